"""`heroctl deployment ...`: list deployments, show one, fail, pause or resume it.

A deployment is a job version's rollout (started by the server with every
version that changes allocations); these commands watch and steer it.
"""

from __future__ import annotations

import time
from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, fmt_age, fmt_time, fmt_until, heading, key_values, print_json, table


@click.group()
def deployment() -> None:
    """Deployments: each job version's rollout, watched and steered."""


def group_rows(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (name, g.get("desired"), g.get("placed"), g.get("healthy"), g.get("unhealthy"))
        for name, g in sorted((doc.get("groups") or {}).items())
    ]


@deployment.command("list")
@click.option("--job", "job_name", default=None, metavar="NAME", help="Only this job's.")
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
    table(["GROUP", "DESIRED", "PLACED", "HEALTHY", "UNHEALTHY"], group_rows(doc))


def _steer(settings: Settings, deployment_id: str, action: str) -> None:
    doc = call(settings, lambda api: api.steer_deployment(deployment_id, action))
    if settings.json_output:
        print_json(doc)
        return
    echo(
        f"Deployment {doc.get('id')} of job '{doc.get('job')}' version {doc.get('version')} "
        f"is {doc.get('status')}: {doc.get('status_description')}."
    )


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
