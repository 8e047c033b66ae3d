"""`--wait` on the list commands: blocking queries until the answer changes.

Every list read of the API takes `?index=N&wait=DURATION` (long polling);
`ApiClient.wait_for_change` repeats them until the body really differs. The
option and what is printed when nothing changed in time live here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from cli.common import Settings, call
from cli.output import Duration, fmt_seconds
from client import Params

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WAIT = "5m"


def wait_option(what: str = "list") -> Callable[[F], F]:
    """`--wait [DURATION]` (default 5m when given bare), passed as `wait`: seconds or None.

    `what` names the thing waited on in the help text ("list", "answer").
    """
    return click.option(
        "--wait",
        type=Duration(),
        is_flag=False,
        flag_value=DEFAULT_WAIT,
        default=None,
        metavar="[DURATION]",
        help=(
            f"Wait (blocking queries, up to DURATION, default 5m) until the {what} differs, "
            "then print it; printed unchanged, with a note on stderr, when nothing changed "
            "in time."
        ),
    )


def fetch_list(
    settings: Settings, path: str, params: Params | None = None, wait: float | None = None
) -> Any:
    """The body of `GET path`: at once without `wait`; with it, once it differs from
    the first read or after `wait` seconds unchanged (then saying so on stderr)."""
    if wait is None:
        return call(settings, lambda api: api.get(path, params=params))[0]
    body, changed = call(settings, lambda api: api.wait_for_change(path, params, wait=wait))
    if not changed:
        click.echo(f"No change within {fmt_seconds(wait)}.", err=True)
    return body
