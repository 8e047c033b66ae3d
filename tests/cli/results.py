"""Checks of a CLI run's result the CLI tests share."""

from __future__ import annotations

from click.testing import Result


def ok(result: Result) -> str:
    """Its stdout, once it exited 0."""
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.stdout
