"""Following a job's placement after `heroctl job run`: where this version of
the job stands (`Placement`, pure: from the job and its allocations), how it
is shown as it changes (a live table on a terminal, a line per change when
piped, nothing with --json), and the blocking queries that drive it.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import click
from rich.console import Group
from rich.text import Text

from cli.common import Settings, call
from cli.output import echo, fmt_duration_ms, fmt_seconds, live_display, make_table, short_id
from cli.pull_progress import PullLines, pulling
from client import ApiClient

MAX_BLOCK_SECONDS = 5.0  # longest blocking wait (the display and the deadline are looked at)


@dataclass
class Placement:
    """Where one version of a job stands (pure: from the job and its allocations)."""

    name: str
    version: int
    job_type: str
    want: dict[str, int]  # group -> count
    allocs: list[dict[str, Any]]  # this version's allocations the cluster wants running
    old_live: int = 0  # allocations of older versions still wanted running
    failures: list[dict[str, Any]] = field(default_factory=list)
    halted: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, submitted: dict[str, Any], allocs: list[dict[str, Any]], job: dict[str, Any] | None
    ) -> Placement:
        version = submitted.get("version", 0)
        wanted = [a for a in allocs if a.get("desired_status") == "run"]
        job = job or {}
        return cls(
            name=submitted["name"],
            version=version,
            job_type=submitted.get("type") or "service",
            want={g["name"]: int(g.get("count", 1)) for g in submitted.get("groups") or []},
            allocs=sorted(
                (a for a in wanted if a.get("job_version") == version),
                key=lambda a: (a.get("group") or "", a.get("index") or 0),
            ),
            old_live=sum(
                1
                for a in wanted
                if a.get("job_version") != version and a.get("status") in ("pending", "running")
            ),
            failures=list(job.get("placement_failures") or []),
            halted=dict((job.get("deployment") or {}).get("halted") or {}),
        )

    def settled(self, a: dict[str, Any]) -> bool:
        """Running, and healthy once health is reported (a batch run may be complete)."""
        if self.job_type == "batch" and a.get("status") == "complete":
            return True
        return a.get("status") == "running" and a.get("healthy") is not False

    @property
    def done(self) -> bool:
        per_group: dict[str, int] = {}
        for a in self.allocs:
            if self.settled(a):
                per_group[a.get("group") or ""] = per_group.get(a.get("group") or "", 0) + 1
        return all(per_group.get(g, 0) >= n for g, n in self.want.items())

    @property
    def broken(self) -> list[dict[str, Any]]:
        """Allocations of this version that failed or were reported unhealthy."""
        return [a for a in self.allocs if a.get("status") == "failed" or a.get("healthy") is False]

    @property
    def total(self) -> int:
        return sum(self.want.values())

    def summary(self) -> str:
        settled = sum(1 for a in self.allocs if self.settled(a))
        verb = "running or complete" if self.job_type == "batch" else "running"
        parts = [f"{settled}/{self.total} {verb}"]
        counts: dict[str, int] = {}
        for a in self.allocs:
            if not self.settled(a):
                key = "unhealthy" if a.get("healthy") is False else a.get("status") or "pending"
                counts[key] = counts.get(key, 0) + 1
        parts += [f"{n} {k}" for k, n in sorted(counts.items())]
        unplaced = self.total - len(self.allocs)
        if unplaced > 0:
            parts.append(f"{unplaced} not placed yet")
        if self.old_live:
            parts.append(f"{self.old_live} of older versions still running")
        return ", ".join(parts)


def failure_text(failures: list[dict[str, Any]], want: dict[str, int]) -> str:
    """`group 'app': 1 of 3 allocations not placed: no node has 2048 MB free (...)`."""
    texts = []
    for f in failures:
        group = f.get("group")
        of = f" of {want[group]}" if group in want else ""
        n = f.get("count", 1)
        plural = "s" if want.get(group, n) != 1 else ""
        texts.append(
            f"group '{group}': {n}{of} allocation{plural} not placed: "
            f"{f.get('reason') or 'no reason given'}"
        )
    return "; ".join(texts)


def broken_text(a: dict[str, Any]) -> str:
    what = "failed" if a.get("status") == "failed" else "is unhealthy"
    events = sorted(a.get("events") or [], key=lambda e: e.get("ts") or 0)
    last = f": {events[-1].get('message')}" if events else ""
    return (
        f"allocation {short_id(a.get('id'))} ({a.get('name')}) on {a.get('node_name')} {what}{last}"
    )


class FollowFailed(click.ClickException):
    pass


class ProgressView(Protocol):
    def update(self, p: Placement, elapsed: float) -> None: ...

    def close(self) -> None: ...


class QuietView:
    """--json: nothing but the submitted job on stdout; the exit status says the rest."""

    def update(self, p: Placement, elapsed: float) -> None:
        pass

    def close(self) -> None:
        pass


def _health(a: dict[str, Any]) -> str:
    return {True: " (healthy)", False: " (unhealthy)"}.get(a.get("healthy"), "")


class LinesView:
    """Piped output: one line per allocation state change, as it happens
    (and per pull of its image)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.pulls = PullLines()

    def update(self, p: Placement, elapsed: float) -> None:
        for line in self.pulls.lines(p.allocs, elapsed):
            echo(line)
        for a in p.allocs:
            state = (a.get("status"), a.get("healthy"))
            if self.seen.get(a["id"]) != state:
                self.seen[a["id"]] = state
                echo(
                    f"{fmt_duration_ms(elapsed * 1000):>7}  {short_id(a['id'])}  {a.get('name')}"
                    f"  {a.get('node_name')}  {a.get('status')}{_health(a)}"
                )

    def close(self) -> None:
        pass


def status_cell(a: dict[str, Any]) -> str:
    """`pending`, or `pending: pulling image X` while its node pulls."""
    status = str(a.get("status"))
    pull = pulling(a) if status == "pending" else None
    return f"{status}: {pull}" if pull else status


class LiveView:
    """A terminal: one live region (summary line and allocation table) redrawn in place."""

    def __init__(self) -> None:
        self.live = live_display()
        self.live.start()

    def update(self, p: Placement, elapsed: float) -> None:
        header = Text(
            f"Job '{p.name}' version {p.version}: {p.summary()}  [{fmt_seconds(elapsed)}]"
        )
        rows = [
            (
                short_id(a["id"]),
                a.get("name"),
                a.get("node_name"),
                status_cell(a),
                a.get("healthy"),
            )
            for a in p.allocs
        ]
        parts: list[Any] = [header]
        if rows:
            parts.append(make_table(["ID", "NAME", "NODE", "STATUS", "HEALTHY"], rows))
        if p.failures:
            parts.append(Text("Placement: " + failure_text(p.failures, p.want)))
        self.live.update(Group(*parts), refresh=True)

    def close(self) -> None:
        self.live.stop()


def progress_view(json_output: bool) -> ProgressView:
    """Nothing with --json, a live table on a terminal, else a line per change."""
    if json_output:
        return QuietView()
    if sys.stdout.isatty():
        return LiveView()
    echo("Following the placement (Ctrl-C stops following; the job stays submitted):")
    return LinesView()


async def follow(
    api: ApiClient, submitted: dict[str, Any], timeout: float, view: ProgressView
) -> Placement:
    """Blocking queries until this version of the job runs, or why not.

    The query is on the job (`GET /v1/jobs/NAME?index=N&wait=...`): its
    index moves with the allocations and with the scheduler's placement
    results, so one query wakes for an allocation's progress and for a
    placement failure alike; the job's allocations are read after each
    answer. For an update, the failures shown may still be the previous
    version's until the scheduler has seen the new one: they count once read
    twice in a row, with a blocking query in between.
    """
    name, version = submitted["name"], submitted.get("version", 0)
    path = f"/v1/jobs/{quote(name, safe='')}"
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    index: int | None = None
    strikes = 0
    while True:
        asked = loop.time()
        remaining = deadline - asked
        wait = None if index is None else max(0.01, min(MAX_BLOCK_SECONDS, remaining))
        job, new_index = await api.blocking_get(path, index=index, wait=wait)
        answered_at_once = wait is not None and loop.time() - asked < min(1.0, wait / 2)
        if index is not None and new_index <= index and answered_at_once:
            # The same index at once: a server that cannot block on this read.
            # Never spin on it: look again in a second.
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
        index = max(index or 0, new_index)
        allocs = await api.list_allocations(job=name)
        p = Placement.of(submitted, allocs, job)
        view.update(p, loop.time() - start)
        if job.get("version") != version:
            raise FollowFailed(
                f"job '{name}' was updated to version {job.get('version')} while version "
                f"{version} was being placed; stopped following"
            )
        if p.done:
            return p
        if p.broken:
            raise FollowFailed(
                f"job '{name}' version {version}: {broken_text(p.broken[0])} "
                f"(see `heroctl alloc status {short_id(p.broken[0]['id'])}`)"
            )
        if p.failures or p.halted:
            strikes += 1
            if version == 0 or strikes >= 2:
                why = failure_text(p.failures, p.want) or "; ".join(
                    f"group '{g}': {reason}" for g, reason in sorted(p.halted.items())
                )
                raise FollowFailed(
                    f"job '{name}' version {version} cannot be fully placed: {why}. "
                    f"The job stays submitted and is placed when a node can take it "
                    f"(`heroctl job stop {name}` removes it)."
                )
        else:
            strikes = 0
        if loop.time() >= deadline:
            raise FollowFailed(
                f"job '{name}' version {version} is not running after {fmt_seconds(timeout)} "
                f"({p.summary()}); it stays submitted: see `heroctl alloc list --job {name}`"
            )


def follow_placement(settings: Settings, doc: dict[str, Any], timeout: float) -> None:
    """Follow a submitted version's placement (`job run` with nothing deployed, `job
    scale`); exit 1 when it fails."""
    view = progress_view(settings.json_output)
    try:
        placed = call(settings, lambda api: follow(api, doc, timeout, view))
    except KeyboardInterrupt:
        view.close()
        click.echo("Stopped following; the job stays submitted.", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        view.close()
    if not settings.json_output:
        echo(f"Job '{placed.name}' version {placed.version}: {placed.summary()}.")
