"""`heroctl job ...`: submit (and follow the placement), list, inspect and stop jobs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Protocol
from urllib.parse import quote

import click
import yaml
from rich.console import Group
from rich.text import Text

from cli.common import Settings, api_options, call, pass_settings
from cli.output import (
    Duration,
    changed_keys,
    echo,
    fmt_age,
    fmt_duration_ms,
    fmt_seconds,
    fmt_time,
    heading,
    key_values,
    live_display,
    make_table,
    print_json,
    short_id,
    table,
)
from cli.waiting import fetch_list, wait_option
from client.api_client import ApiClient
from domain.jobspec import SERVER_OWNED_FIELDS

# What `job status` shows in its summary rather than under "Spec:", and what
# `job status --versions` does not count as a change: the job's name and type,
# the fields the server owns, and what GET /v1/jobs/:name adds about the placement.
SUMMARY_FIELDS = SERVER_OWNED_FIELDS | {
    "name",
    "type",
    "placement_failures",
    "deployment",
    "allocations",
}


@click.group()
def job() -> None:
    """Jobs: the declarative description of what should run."""


class SpecError(click.ClickException):
    pass


def load_spec(text: str, source: str) -> dict[str, Any]:
    """A job file's text (JSON or YAML) -> the JSON object to submit.

    JSON is tried first so a `.json` file gets JSON's error messages; YAML
    values JSON cannot carry (dates) become strings rather than failing later.
    """
    try:
        doc = json.loads(text)
    except ValueError as e:
        if source.endswith(".json"):
            raise SpecError(f"{source} is not valid JSON: {e}") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as ye:
            raise SpecError(f"{source} is neither valid JSON nor valid YAML: {ye}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{source} must contain one job: a JSON object / YAML mapping")
    return json.loads(json.dumps(doc, default=str))


# --- following a placement ---------------------------------------------------------
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
    """Piped output: one line per allocation state change, as it happens."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, ...]] = {}

    def update(self, p: Placement, elapsed: float) -> None:
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
                a.get("status"),
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


@job.command("run")
@click.argument("file", type=click.File("r"))
@click.option(
    "--check-index",
    type=click.IntRange(min=0),
    metavar="N",
    help="Only submit if the job's job_modify_index is still N (0: must not exist).",
)
@click.option("--detach", is_flag=True, help="Return once the job is submitted; do not follow.")
@click.option(
    "--timeout",
    type=Duration(),
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="How long to follow the placement before giving up (exit 1).",
)
@api_options
@pass_settings
def run(
    settings: Settings, file: IO[str], check_index: int | None, detach: bool, timeout: float
) -> None:
    """Create or update a job from a file, then follow its placement.

    FILE is JSON or YAML (`-` reads stdin). Every submit makes a new version.
    Unless --detach, the command then follows the new version's allocations
    until all of them run (and are healthy, once reported), and exits 1 with
    the scheduler's reason when they cannot be placed. Ctrl-C stops
    following; the job stays submitted. With --json the submitted job is
    printed and the exit status tells how the placement went.
    """
    source = "stdin" if file.name == "<stdin>" else file.name
    spec = load_spec(file.read(), source)
    doc = call(settings, lambda api: api.submit_job(spec, job_modify_index=check_index))
    if settings.json_output:
        print_json(doc)
    else:
        verb = "registered" if doc.get("version") == 0 else "updated"
        echo(
            f"Job '{doc.get('name')}' {verb}: version {doc.get('version')}, "
            f"job modify index {doc.get('job_modify_index')}."
        )
    if detach:
        return
    view: ProgressView
    if settings.json_output:
        view = QuietView()
    elif sys.stdout.isatty():
        view = LiveView()
    else:
        echo("Following the placement (Ctrl-C stops following; the job stays submitted):")
        view = LinesView()
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


@job.command("list")
@wait_option()
@api_options
@pass_settings
def list_(settings: Settings, wait: float | None) -> None:
    """List jobs with their status and current version."""
    jobs = fetch_list(settings, "/v1/jobs", wait=wait)
    if settings.json_output:
        print_json(jobs)
        return
    if not jobs:
        echo("No jobs.")
        return
    now = time.time() * 1000
    table(
        ["NAME", "TYPE", "STATUS", "VERSION", "MODIFY INDEX", "SUBMITTED"],
        [
            (
                j.get("name"),
                j.get("type"),
                j.get("status"),
                j.get("version"),
                j.get("job_modify_index"),
                fmt_age(j.get("submit_time"), now),
            )
            for j in jobs
        ],
    )


def summary_rows(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Name", doc.get("name")),
        ("Type", doc.get("type")),
        ("Status", doc.get("status")),
        ("Version", doc.get("version")),
        ("Submitted", fmt_time(doc.get("submit_time"))),
        ("Job modify index", doc.get("job_modify_index")),
        ("Create index", doc.get("create_index")),
    ]


def placement_rows(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Allocation counts by status, placement failures and a halted/deferred update."""
    counts = doc.get("allocations") or {}
    rows: list[tuple[str, Any]] = [
        ("Allocations", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"),
    ]
    want = {g.get("name"): g.get("count", 1) for g in doc.get("groups") or []}
    for f in doc.get("placement_failures") or []:
        rows.append(("Placement failure", failure_text([f], want)))
    deployment = doc.get("deployment") or {}
    for group, reason in sorted((deployment.get("halted") or {}).items()):
        rows.append(("Update halted", f"group '{group}': {reason}"))
    for group, n in sorted((deployment.get("deferred") or {}).items()):
        rows.append(("Update waiting", f"group '{group}': {n} allocation(s) still to replace"))
    return rows


def job_alloc_rows(allocs: list[dict[str, Any]], now_ms: float) -> list[tuple[Any, ...]]:
    ordered = sorted(
        allocs,
        key=lambda a: (a.get("desired_status") != "run", a.get("group") or "", a.get("index") or 0),
    )
    return [
        (
            short_id(a.get("id")),
            a.get("group"),
            a.get("node_name"),
            a.get("status"),
            a.get("desired_status"),
            a.get("healthy"),
            a.get("job_version"),
            fmt_age(a.get("create_time"), now_ms),
        )
        for a in ordered
    ]


def version_rows(versions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Newest first, each with the spec fields changed since the version before it."""
    rows = []
    for i, v in enumerate(versions):
        previous = versions[i + 1] if i + 1 < len(versions) else None
        changes = changed_keys(previous, v, ignore=SUMMARY_FIELDS)
        rows.append(
            (
                v.get("version"),
                v.get("status"),
                v.get("job_modify_index"),
                fmt_time(v.get("submit_time")),
                ", ".join(changes) if changes else ("-" if previous is None else "(none)"),
            )
        )
    return rows


@job.command("status")
@click.argument("name")
@click.option("--versions", is_flag=True, help="Show the stored versions instead.")
@api_options
@pass_settings
def status(settings: Settings, name: str, versions: bool) -> None:
    """Show a job's summary and spec (or, with --versions, its history)."""
    if versions:
        history = call(settings, lambda api: api.job_versions(name))
        if settings.json_output:
            print_json(history)
            return
        table(["VERSION", "STATUS", "MODIFY INDEX", "SUBMITTED", "CHANGED"], version_rows(history))
        return
    doc = call(settings, lambda api: api.get_job(name))
    if settings.json_output:
        print_json(doc)
        return
    allocs = call(settings, lambda api: api.list_allocations(job=name))
    key_values(summary_rows(doc) + placement_rows(doc))
    if allocs:
        heading("Allocations")
        table(
            ["ID", "GROUP", "NODE", "STATUS", "DESIRED", "HEALTHY", "VERSION", "CREATED"],
            job_alloc_rows(allocs, time.time() * 1000),
        )
    spec = {k: v for k, v in doc.items() if k not in SUMMARY_FIELDS}
    if spec:
        echo("")
        echo("Spec:")
        echo(yaml.safe_dump(spec, sort_keys=False, default_flow_style=False).rstrip())


@job.command("stop")
@click.argument("name")
@api_options
@pass_settings
def stop(settings: Settings, name: str) -> None:
    """Stop a job and remove it with its history."""
    result = call(settings, lambda api: api.delete_job(name))
    if settings.json_output:
        print_json(result)
        return
    echo(f"Job '{name}' stopped and removed (index {result.get('index')}).")
