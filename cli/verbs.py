"""What the verbs of every command group share: one vocabulary (aliases for
older or other names) and the confirmation destructive verbs ask for.

The vocabulary: `list`, `status` (a thing's state), `show` (a stored
document), `run`, `stop`, `rm`, `create`. A group whose verb differs keeps
its old name working as a hidden alias (`alias`), so scripts do not break
and `--help` lists one name per action.

A destructive verb is decorated with `@destructive("Question?")`: it takes
`--yes/-y`; without it the question is asked on a terminal (default no),
and refused outright when stdin is not one (a script that forgot `--yes`
gets a clear error instead of hanging on a prompt).
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["alias", "confirm", "destructive", "stdin_is_interactive"]


def alias(group: click.Group, command: click.Command, *names: str) -> None:
    """Make `command` of `group` answer to `names` too (hidden from `--help`)."""
    for name in names:
        twin = copy.copy(command)
        twin.name = name
        twin.hidden = True
        group.add_command(twin, name)


def stdin_is_interactive() -> bool:
    """Whether a person can answer a question on stdin (tests replace this)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def confirm(question: str, assume_yes: bool) -> None:
    """Go on when `--yes` was given or a person says yes; otherwise exit 1 with why."""
    if assume_yes:
        return
    if not stdin_is_interactive():
        raise click.ClickException(
            f"{question} Not done: this asks for confirmation and stdin is not a terminal; "
            "pass --yes to do it without asking."
        )
    if not click.confirm(question, default=False, err=True):
        raise click.ClickException("Not confirmed: nothing was changed.")


def destructive(
    question: str, *, unless: Callable[[Mapping[str, Any]], bool] | None = None
) -> Callable[[F], F]:
    """Add `--yes/-y` to a command and ask `question` (formatted with the
    command's parameters, e.g. `"Remove job '{name}'?"`) before it runs,
    unless `--yes` is given or `unless(params)` says the call is harmless
    (say, `node drain --disable`)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, assume_yes: bool, **params: Any) -> Any:
            if unless is None or not unless(params):
                confirm(question.format(**params), assume_yes)
            return fn(*args, **params)

        # wraps() shared the option list of `fn`: the wrapper gets its own.
        wrapper.__click_params__ = list(getattr(fn, "__click_params__", []))  # type: ignore[attr-defined]
        option = click.option(
            "--yes",
            "-y",
            "assume_yes",
            is_flag=True,
            help="Do it without asking for confirmation (for scripts).",
        )
        return option(wrapper)  # type: ignore[return-value]

    return decorate
