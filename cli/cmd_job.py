"""`heroctl job ...`: submit (and follow the placement), plan a submit, scale a
group, revert to an older version, list, inspect and stop jobs."""

from __future__ import annotations

import json
import time
from typing import IO, Any

import click
import yaml

from cli.common import Settings, api_options, call, pass_settings
from cli.completion import complete_jobs
from cli.deployment_follow import find_deployment, follow_rollout
from cli.output import (
    Duration,
    changed_keys,
    echo,
    fmt_age,
    fmt_time,
    heading,
    key_values,
    print_json,
    short_id,
    table,
)
from cli.placement import failure_text, follow_placement
from cli.plan_output import plan_text
from cli.verbs import alias, destructive
from cli.waiting import fetch_list, wait_option
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
    help="How long to follow the deployment (or placement) before giving up (exit 1).",
)
@api_options
@pass_settings
def run(
    settings: Settings, file: IO[str], check_index: int | None, detach: bool, timeout: float
) -> None:
    """Create or update a job from a file, then follow its deployment.

    FILE is JSON or YAML (`-` reads stdin). Every submit makes a new version;
    one that changes allocations starts a deployment, which is followed
    (unless --detach) until it is successful (exit 0), waits for promotion
    (exit 0, saying how to promote), fails (exit 1, saying whether it was
    rolled back) or --timeout passes (exit 1). A submit that changes nothing
    follows the placement instead: exit 0 once the allocations run, 1 with
    the scheduler's reason when they cannot be placed. Ctrl-C stops
    following; the job stays submitted. With --json the final deployment
    (or, with nothing to follow, the submitted job) is printed.
    """
    source = "stdin" if file.name == "<stdin>" else file.name
    spec = load_spec(file.read(), source)
    doc = call(settings, lambda api: api.submit_job(spec, job_modify_index=check_index))
    started = None if detach else call(settings, lambda api: find_deployment(api, doc))
    if settings.json_output and started is None:
        print_json(doc)
    elif not settings.json_output:
        verb = "registered" if doc.get("version") == 0 else "updated"
        echo(
            f"Job '{doc.get('name')}' {verb}: version {doc.get('version')}, "
            f"job modify index {doc.get('job_modify_index')}."
        )
    if detach:
        return
    if started is None:
        follow_placement(settings, doc, timeout)
    else:
        follow_rollout(settings, started, timeout)


PLAN_ERROR_EXIT = 255  # as `nomad job plan`: 0 no change, 1 changes, 255 an error


@job.command("plan")
@click.argument("file", type=click.File("r"))
@api_options
@pass_settings
def plan(settings: Settings, file: IO[str]) -> None:
    """Show what submitting a job file would change; change nothing.

    FILE is JSON or YAML (`-` reads stdin). Prints the difference from the
    job's current version (`+` added, `-` deleted, `~` edited), what the
    scheduler would do with each group's allocations (create, destroy,
    in-place or create/destroy update) and what it could not place, and the
    job modify index for `heroctl job run --check-index`. Exit status, as
    `nomad job plan`: 0 when submitting would create or destroy no
    allocation (or the file is the current version), 1 when it would, 255
    when the plan could not be made.
    """
    source = "-" if file.name == "<stdin>" else file.name
    try:
        spec = load_spec(file.read(), "stdin" if source == "-" else source)
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            raise SpecError(f"{source}: the job has no name")
        result = call(settings, lambda api: api.plan_job(spec))
    except click.ClickException as e:
        e.exit_code = PLAN_ERROR_EXIT
        raise
    if settings.json_output:
        print_json(result)
    else:
        echo(plan_text(result, source))
    raise click.exceptions.Exit(1 if result.get("changes") else 0)


def scale_target(args: tuple[str, ...]) -> tuple[str | None, int]:
    """`[GROUP] COUNT` -> (group or None, count)."""
    if not 1 <= len(args) <= 2:
        raise click.UsageError("expected [GROUP] COUNT")
    try:
        count = int(args[-1])
    except ValueError:
        raise click.BadParameter(
            f"{args[-1]!r} is not a whole number", param_hint="COUNT"
        ) from None
    if count < 0:
        raise click.BadParameter("must be 0 or more", param_hint="COUNT")
    return (args[0] if len(args) == 2 else None), count


@job.command("scale")
@click.argument("name", shell_complete=complete_jobs)
@click.argument("target", nargs=-1, required=True, metavar="[GROUP] COUNT")
@click.option(
    "--check-index",
    type=click.IntRange(min=0),
    metavar="N",
    help="Only scale if the job's job_modify_index is still N.",
)
@click.option("--detach", is_flag=True, help="Return once the job is scaled; do not follow.")
@click.option(
    "--timeout",
    type=Duration(),
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="How long to follow the deployment before giving up (exit 1).",
)
@api_options
@pass_settings
def scale(
    settings: Settings,
    name: str,
    target: tuple[str, ...],
    check_index: int | None,
    detach: bool,
    timeout: float,
) -> None:
    """Set how many allocations of a group run: a new version of the job.

    GROUP may be left out when the job has one group. Only the count
    changes: the running allocations move to the new version in place and
    the scheduler places or stops the difference. Unless --detach, follows
    the deployment the new version started, as `job run` does.
    """
    group, count = scale_target(target)
    result = call(settings, lambda api: api.scale_job(name, count, group, check_index))
    if settings.json_output:
        print_json(result)
    else:
        echo(
            f"Job '{name}' group '{result.get('group')}' scaled from "
            f"{result.get('previous_count')} to {result.get('count')}: version "
            f"{result.get('version')}, job modify index {result.get('job_modify_index')}."
        )
    if detach:
        return
    started = None
    if result.get("deployment_id"):
        started = call(settings, lambda api: api.get_deployment(result["deployment_id"]))
    if started is not None:
        follow_rollout(settings, started, timeout)
        return
    doc = call(settings, lambda api: api.get_job(name))
    follow_placement(settings, dict(doc, version=result.get("version")), timeout)


@job.command("revert")
@click.argument("name", shell_complete=complete_jobs)
@click.argument("version", type=click.IntRange(min=0))
@click.option(
    "--check-index",
    type=click.IntRange(min=0),
    metavar="N",
    help="Only revert if the job's job_modify_index is still N.",
)
@api_options
@pass_settings
def revert(settings: Settings, name: str, version: int, check_index: int | None) -> None:
    """Resubmit VERSION's spec as the job's next version (its own deployment)."""
    doc = call(settings, lambda api: api.revert_job(name, version, check_index))
    if settings.json_output:
        print_json(doc)
        return
    echo(
        f"Job '{name}' reverted to version {version}: new version {doc.get('version')}, "
        f"job modify index {doc.get('job_modify_index')}."
    )


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
        ("Stable", "yes" if doc.get("stable") else "no"),
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
                "yes" if v.get("stable") else "no",
                v.get("job_modify_index"),
                fmt_time(v.get("submit_time")),
                ", ".join(changes) if changes else ("-" if previous is None else "(none)"),
            )
        )
    return rows


@job.command("status")
@click.argument("name", shell_complete=complete_jobs)
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
        headers = ["VERSION", "STATUS", "STABLE", "MODIFY INDEX", "SUBMITTED", "CHANGED"]
        table(headers, version_rows(history))
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
@destructive("Stop job '{name}' and remove it with its history?")
@click.argument("name", shell_complete=complete_jobs)
@api_options
@pass_settings
def stop(settings: Settings, name: str) -> None:
    """Stop a job and remove it with its history."""
    result = call(settings, lambda api: api.delete_job(name))
    if settings.json_output:
        print_json(result)
        return
    echo(f"Job '{name}' stopped and removed (index {result.get('index')}).")


alias(job, stop, "rm")
