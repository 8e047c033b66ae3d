"""`heroctl deployment ...`: list deployments, show one, promote, fail, pause or resume it.

A deployment is a job version's rollout (started by the server with every
version that changes allocations); these commands watch and steer it.
"""

from __future__ import annotations

import time
from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.completion import complete_jobs
from cli.output import echo, fmt_age, fmt_time, fmt_until, heading, key_values, print_json, table


@click.group()
def deployment() -> None:
    """Deployments: each job version's rollout, watched and steered."""


GROUP_HEADERS = ["GROUP", "DESIRED", "PLACED", "HEALTHY", "UNHEALTHY"]


def group_rows(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (name, g.get("desired"), g.get("placed"), g.get("healthy"), g.get("unhealthy"))
        for name, g in sorted((doc.get("groups") or {}).items())
    ]


def has_canaries(doc: dict[str, Any]) -> bool:
    return any(g.get("desired_canaries", 0) > 0 for g in (doc.get("groups") or {}).values())


def canary_cells(doc: dict[str, Any]) -> list[str]:
    """Per group (as :func:`group_rows`): canaries placed / wanted."""
    return [
        f"{len(g.get('canaries') or ())}/{g.get('desired_canaries', 0)}"
        for _, g in sorted((doc.get("groups") or {}).items())
    ]


@deployment.command("list")
@click.option(
    "--job",
    "job_name",
    default=None,
    metavar="NAME",
    shell_complete=complete_jobs,
    help="Only this job's.",
)
@api_options
@pass_settings
def list_(settings: Settings, job_name: str | None) -> None:
    """List deployments, newest first."""
    docs = call(settings, lambda api: api.list_deployments(job_name))
    if settings.json_output:
        print_json(docs)
        return
    if not docs:
        echo("No deployments.")
        return
    now = time.time() * 1000
    rows = []
    for d in docs:
        groups = (d.get("groups") or {}).values()
        healthy = sum(g.get("healthy", 0) for g in groups)
        desired = sum(g.get("desired", 0) for g in groups)
        rows.append(
            (
                d.get("id"),
                d.get("job"),
                d.get("version"),
                d.get("status"),
                f"{healthy}/{desired}",
                fmt_age(d.get("create_time"), now),
                d.get("status_description"),
            )
        )
    table(["ID", "JOB", "VERSION", "STATUS", "HEALTHY", "CREATED", "DESCRIPTION"], rows)


def summary_rows(doc: dict[str, Any], now_ms: float) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("ID", doc.get("id")),
        ("Job", doc.get("job")),
        ("Version", doc.get("version")),
        ("Strategy", doc.get("strategy")),
        ("Status", doc.get("status")),
        ("Description", doc.get("status_description")),
        ("Auto revert", "yes" if doc.get("auto_revert") else "no"),
        ("Created", fmt_time(doc.get("create_time"))),
        ("Modified", fmt_time(doc.get("modify_time"))),
    ]
    if doc.get("status") == "running":
        rows.append(("Progress deadline", fmt_until(doc.get("require_progress_by"), now_ms)))
    if has_canaries(doc):
        rows.append(("Promoted", "yes" if doc.get("promoted") else "no"))
    if doc.get("status") == "blocked-on-promotion":
        rows.append(("Next", f"heroctl deployment promote {doc.get('id')}"))
    if "reverted_to" in doc:
        rows.append(
            ("Rolled back", f"to version {doc['reverted_to']} (as {doc.get('revert_version')})")
        )
    return rows


@deployment.command("status")
@click.argument("deployment_id", metavar="ID")
@api_options
@pass_settings
def status(settings: Settings, deployment_id: str) -> None:
    """Show one deployment and its groups."""
    doc = call(settings, lambda api: api.get_deployment(deployment_id))
    if settings.json_output:
        print_json(doc)
        return
    key_values(summary_rows(doc, time.time() * 1000))
    heading("Groups")
    rows = group_rows(doc)
    if not has_canaries(doc):
        table(GROUP_HEADERS, rows)
        return
    cells = canary_cells(doc)
    table([*GROUP_HEADERS, "CANARIES"], [(*row, cells[i]) for i, row in enumerate(rows)])
    draining = draining_rows(doc)
    if draining:
        heading("Older versions draining")
        table(["GROUP", "VERSION", "ALLOCATIONS", "CONNECTIONS"], draining)


def draining_rows(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A rainbow deployment's older versions still running: per group and
    version, the allocations and the connections they hold."""
    return [
        (name, int(version), row.get("allocations"), row.get("connections"))
        for name, g in sorted((doc.get("groups") or {}).items())
        for version, row in sorted((g.get("draining") or {}).items(), key=lambda v: int(v[0]))
    ]


def _steer(settings: Settings, deployment_id: str, action: str) -> None:
    doc = call(settings, lambda api: api.steer_deployment(deployment_id, action))
    if settings.json_output:
        print_json(doc)
        return
    echo(
        f"Deployment {doc.get('id')} of job '{doc.get('job')}' version {doc.get('version')} "
        f"is {doc.get('status')}: {doc.get('status_description')}."
    )


@deployment.command("promote")
@click.argument("deployment_id", metavar="ID")
@api_options
@pass_settings
def promote(settings: Settings, deployment_id: str) -> None:
    """Promote a deployment blocked on promotion: canary rolls the rest,
    blue-green stops the old set (and traffic moves to the new one)."""
    _steer(settings, deployment_id, "promote")


@deployment.command("fail")
@click.argument("deployment_id", metavar="ID")
@api_options
@pass_settings
def fail(settings: Settings, deployment_id: str) -> None:
    """Fail a running or paused deployment (rolls back if the job has auto_revert)."""
    _steer(settings, deployment_id, "fail")


@deployment.command("pause")
@click.argument("deployment_id", metavar="ID")
@api_options
@pass_settings
def pause(settings: Settings, deployment_id: str) -> None:
    """Pause a running deployment: no more replacements start."""
    _steer(settings, deployment_id, "pause")


@deployment.command("resume")
@click.argument("deployment_id", metavar="ID")
@api_options
@pass_settings
def resume(settings: Settings, deployment_id: str) -> None:
    """Resume a paused deployment."""
    _steer(settings, deployment_id, "resume")
