"""Following a job version's deployment after `heroctl job run`.

A submit that changes allocations starts a deployment in the same raft
command (its `create_index` is the version's `job_modify_index`); the
server's deployments controller then records per group how many allocations
are placed, healthy and unhealthy, and decides success or failure (rolling
back with `auto_revert`). So the CLI watches one document with blocking
queries instead of re-deriving the rollout from allocations: what it shows
is what the server decided. A live table on a terminal, a line per change
when piped, nothing with --json (the final document is printed instead).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import click
from rich.console import Group
from rich.text import Text

from cli.common import Settings, call
from cli.output import (
    echo,
    fmt_duration_ms,
    fmt_seconds,
    fmt_until,
    live_display,
    make_table,
    print_json,
    table,
)
from cli.placement import failure_text
from cli.pull_progress import PullLines
from client import ApiClient

MAX_BLOCK_SECONDS = 5.0  # longest blocking wait: the deadline countdown is redrawn this often
# Where following stops, and with which exit status.
ENDED = {"successful": 0, "blocked-on-promotion": 0, "failed": 1, "cancelled": 1}


async def find_deployment(api: ApiClient, submitted: dict[str, Any]) -> dict[str, Any] | None:
    """The deployment the submit of `submitted` started, or None (nothing changed).

    The submit's answer names it (`deployment_id`); a server that does not
    say is asked for the deployments of the job: started in the submit's own
    raft command, so a consistent read right after the submit sees it (same
    version, created at the job modify index).
    """
    if "deployment_id" in submitted:
        dep_id = submitted["deployment_id"]
        return None if dep_id is None else await api.get_deployment(dep_id)
    for doc in await api.list_deployments(submitted["name"]):
        if doc.get("version") == submitted.get("version") and doc.get(
            "create_index"
        ) == submitted.get("job_modify_index"):
            return doc
    return None


def canaries_of(group: dict[str, Any]) -> int | None:
    """A group's canaries (a count or the list of canary allocations), None without any."""
    value = group.get("canaries", group.get("placed_canaries"))
    if isinstance(value, list):
        return len(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def group_rows(doc: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Headers and rows of the per-group table (CANARIES only when a group has them)."""
    groups = sorted((doc.get("groups") or {}).items())
    with_canaries = any(canaries_of(g) is not None for _, g in groups)
    headers = ["GROUP", "DESIRED", "PLACED", "HEALTHY", "UNHEALTHY"]
    headers += ["CANARIES"] if with_canaries else []
    rows = []
    for name, g in groups:
        row: tuple[Any, ...] = (name, g.get("desired"), g.get("placed"))
        row += (g.get("healthy"), g.get("unhealthy"))
        rows.append(row + ((canaries_of(g),) if with_canaries else ()))
    return headers, rows


def groups_line(doc: dict[str, Any]) -> str:
    """`app: 2/2 placed, 1 healthy, 0 unhealthy; db: ...` (one line for piped output)."""
    parts = []
    for name, g in sorted((doc.get("groups") or {}).items()):
        text = (
            f"{name}: {g.get('placed', 0)}/{g.get('desired', 0)} placed, "
            f"{g.get('healthy', 0)} healthy, {g.get('unhealthy', 0)} unhealthy"
        )
        canaries = canaries_of(g)
        if canaries is not None:
            text += f", {canaries} canaries"
        parts.append(text)
    return "; ".join(parts) or "no groups"


def deadline_text(doc: dict[str, Any], now_ms: float) -> str:
    """The time left to the progress deadline while the deployment can still make progress."""
    if doc.get("status") != "running" or not doc.get("require_progress_by"):
        return ""
    return f"progress deadline {fmt_until(doc.get('require_progress_by'), now_ms)}"


def status_line(doc: dict[str, Any], now_ms: float) -> str:
    """`running (deployment is running), progress deadline in 9m58s`."""
    text = f"{doc.get('status')}"
    if doc.get("status_description"):
        text += f" ({doc['status_description']})"
    deadline = deadline_text(doc, now_ms)
    return f"{text}, {deadline}" if deadline else text


class DeploymentView(Protocol):
    def update(self, doc: dict[str, Any], elapsed: float) -> None: ...

    def close(self) -> None: ...


class QuietView:
    """--json: only the final deployment document is printed (by the caller)."""

    def update(self, doc: dict[str, Any], elapsed: float) -> None:
        pass

    def close(self) -> None:
        pass


class LinesView:
    """Piped output: a line each time the status or a group's counts change."""

    def __init__(self) -> None:
        self.last: tuple[Any, ...] | None = None

    def update(self, doc: dict[str, Any], elapsed: float) -> None:
        state = (doc.get("status"), doc.get("status_description"), group_rows(doc)[1])
        if state == self.last:
            return
        self.last = state
        echo(
            f"{fmt_duration_ms(elapsed * 1000):>7}  {groups_line(doc)}  "
            f"[{status_line(doc, time.time() * 1000)}]"
        )

    def close(self) -> None:
        pass


class LiveView:
    """A terminal: the deployment's summary line and group table, redrawn in place."""

    def __init__(self) -> None:
        self.live = live_display()
        self.live.start()

    def update(self, doc: dict[str, Any], elapsed: float) -> None:
        header = Text(
            f"Deployment {doc.get('id')} of job '{doc.get('job')}' version {doc.get('version')}: "
            f"{status_line(doc, time.time() * 1000)}  [{fmt_seconds(elapsed)}]"
        )
        headers, rows = group_rows(doc)
        self.live.update(Group(header, make_table(headers, rows)), refresh=True)

    def close(self) -> None:
        self.live.stop()


def deployment_view(json_output: bool, deployment_id: str) -> DeploymentView:
    """Nothing with --json, a live table on a terminal, else a line per change."""
    if json_output:
        return QuietView()
    if sys.stdout.isatty():
        return LiveView()
    echo(f"Following deployment {deployment_id} (Ctrl-C stops following; the deployment goes on):")
    return LinesView()


@dataclass
class Followed:
    """Where following ended: the last document read, whether the timeout ran out,
    and why the version cannot be placed (the scheduler's reasons), if it cannot."""

    doc: dict[str, Any]
    timed_out: bool = False
    unplaced: str | None = None


def unplaced_reason(job: dict[str, Any], version: int) -> str | None:
    """The scheduler's placement failures once it evaluated `version`, else None.

    A deployment whose allocations cannot be placed would only fail at its
    progress deadline (minutes); the scheduler says so at once, as `job run`
    reported before deployments. Failures of an older version do not count.
    """
    evaluated = (job.get("deployment") or {}).get("job_version")
    failures = job.get("placement_failures") or []
    if job.get("version") != version or evaluated != version or not failures:
        return None
    want = {g.get("name"): int(g.get("count", 1)) for g in job.get("groups") or []}
    return failure_text(failures, want)


async def _first_answer(
    reads: dict[str, Awaitable[tuple[Any, int]]],
) -> tuple[str, Any, int]:
    """Run blocking reads side by side: (name, body, index) of the first to answer."""
    tasks = {asyncio.ensure_future(read): name for name, read in reads.items()}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    task = next(iter(done))
    body, index = task.result()
    return tasks[task], body, index


async def follow_deployment(
    api: ApiClient,
    first: dict[str, Any],
    timeout: float,
    view: DeploymentView,
    pulls: PullLines | None = None,
) -> Followed:
    """Blocking queries until the deployment ends, cannot be placed, or `timeout` passes.

    Two reads block side by side: the deployment (`GET /v1/deployments/ID`,
    its progress and status) and the job (`GET /v1/jobs/NAME`, which moves
    with the scheduler's placement failures); whichever answers first is
    used. Each waits at most MAX_BLOCK_SECONDS so the deadline countdown
    moves on a terminal; an answer at once with the same index (a server that
    cannot block on a read) is never repeated in a loop. With ``pulls``, the
    version's allocations are read after each answer and their image pulls
    printed (:mod:`cli.pull_progress`).
    """
    paths = {
        "deployment": f"/v1/deployments/{quote(first['id'], safe='')}",
        "job": f"/v1/jobs/{quote(first['job'], safe='')}",
    }
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    doc, dep_index = await api.blocking_get(paths["deployment"])
    job, job_index = await api.blocking_get(paths["job"])
    indexes = {"deployment": dep_index, "job": job_index}
    # An update's failures may be passing (old allocations still hold the room):
    # they count once two answers about the job in a row carry them.
    strikes = 0
    while True:
        view.update(doc, loop.time() - start)
        if pulls is not None:
            allocs = await api.list_allocations(job=first["job"])
            for line in pulls.lines(allocs, loop.time() - start):
                echo(line)
        if doc.get("status") in ENDED:
            return Followed(doc)
        unplaced = unplaced_reason(job, first["version"])
        if unplaced is not None and (first["version"] == 0 or strikes >= 1):
            return Followed(doc, unplaced=unplaced)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return Followed(doc, timed_out=True)
        asked = loop.time()
        wait = max(0.01, min(MAX_BLOCK_SECONDS, remaining))
        which, body, new_index = await _first_answer(
            {
                name: api.blocking_get(path, index=indexes[name], wait=wait)
                for name, path in paths.items()
            }
        )
        if which == "deployment":
            doc = body
        else:
            strikes = strikes + 1 if unplaced is not None else 0
            job = body
        if new_index <= indexes[which] and loop.time() - asked < min(1.0, wait / 2):
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
        indexes[which] = max(indexes[which], new_index)


def outcome(followed: Followed, timeout: float) -> tuple[int, str]:
    """(exit status, the closing sentence) for where following ended."""
    doc = followed.doc
    dep_id, job, version = doc.get("id"), doc.get("job"), doc.get("version")
    what = f"Deployment {dep_id} of job '{job}' version {version}"
    status, description = doc.get("status"), doc.get("status_description") or ""
    if followed.unplaced is not None:
        return 1, (
            f"job '{job}' version {version} cannot be fully placed: {followed.unplaced}. "
            f"The job stays submitted and is placed when a node can take it "
            f"(`heroctl job stop {job}` removes it)."
        )
    if followed.timed_out:
        return 1, (
            f"{what} is still {status} after {fmt_seconds(timeout)} ({description}); "
            f"it goes on: see `heroctl deployment status {dep_id}`"
        )
    if status == "successful":
        return 0, f"{what} successful: {groups_line(doc)}."
    if status == "blocked-on-promotion":
        return 0, (
            f"{what} is waiting for promotion ({description}): "
            f"promote it with `heroctl deployment promote {dep_id}`."
        )
    if status == "cancelled":
        return 1, f"{what} was cancelled: {description}."
    if "reverted_to" in doc:
        as_version = doc.get("revert_version")
        as_text = f" (as version {as_version})" if as_version is not None else ""
        return 1, (
            f"{what} failed: {description}. The job was rolled back to version "
            f"{doc['reverted_to']}{as_text}."
        )
    return 1, f"{what} failed: {description}. It was not rolled back."


class DeploymentFailed(click.ClickException):
    """Exit 1 with the closing sentence on stderr."""


def follow_rollout(settings: Settings, started: dict[str, Any], timeout: float) -> None:
    """`job run`'s follow of the deployment it started: 0 when successful or waiting
    for promotion, 1 when it failed, was cancelled or `timeout` ran out.

    With --json only the final deployment document is printed; piped output
    ends with the groups' table as last read.
    """
    view = deployment_view(settings.json_output, started["id"])
    pulls = None if settings.json_output else PullLines(started.get("version"))
    try:
        followed = call(settings, lambda api: follow_deployment(api, started, timeout, view, pulls))
    except KeyboardInterrupt:
        view.close()
        click.echo("Stopped following; the deployment goes on.", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        view.close()
    code, sentence = outcome(followed, timeout)
    if settings.json_output:
        print_json(followed.doc)
    elif isinstance(view, LinesView):
        table(*group_rows(followed.doc))
    if code:
        raise DeploymentFailed(sentence)
    if not settings.json_output:
        echo(sentence)
