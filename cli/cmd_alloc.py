"""`heroctl alloc ...`: allocations, the running replicas of jobs (list, inspect,
stop, restart)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.completion import complete_allocations, complete_jobs, complete_nodes
from cli.output import (
    NONE,
    Duration,
    echo,
    fmt_age,
    fmt_time,
    heading,
    key_values,
    print_json,
    short_id,
    table,
)
from cli.waiting import fetch_list, wait_option
from client import ApiClient, ApiClientError

RESTART_BLOCK_SECONDS = 5.0  # longest blocking wait while a restart is awaited

STATUSES = ("pending", "running", "complete", "failed", "lost")


@click.group()
def alloc() -> None:
    """Allocations: each replica of a job placed on a node."""


def sort_key(a: dict[str, Any]) -> tuple[Any, ...]:
    return (
        a.get("job") or "",
        a.get("group") or "",
        a.get("index") or 0,
        a.get("create_index") or 0,
    )


def alloc_rows(allocs: list[dict[str, Any]], now_ms: float) -> list[tuple[Any, ...]]:
    return [
        (
            short_id(a.get("id")),
            a.get("name"),
            a.get("node_name") or short_id(a.get("node")),
            a.get("status"),
            a.get("desired_status"),
            a.get("healthy"),
            a.get("job_version"),
            fmt_age(a.get("create_time"), now_ms),
        )
        for a in sorted(allocs, key=sort_key)
    ]


ALLOC_HEADERS = ["ID", "NAME", "NODE", "STATUS", "DESIRED", "HEALTHY", "VERSION", "CREATED"]


@alloc.command("list")
@click.option(
    "--job", metavar="JOB", shell_complete=complete_jobs, help="Only this job's allocations."
)
@click.option(
    "--node",
    metavar="NODE",
    shell_complete=complete_nodes,
    help="Only allocations on this node (name or id).",
)
@click.option("--status", type=click.Choice(STATUSES), help="Only allocations in this status.")
@wait_option()
@api_options
@pass_settings
def list_(
    settings: Settings,
    job: str | None,
    node: str | None,
    status: str | None,
    wait: float | None,
) -> None:
    """List allocations, optionally of one job, on one node, or in one status."""
    params = {"job": job, "node": node, "status": status}
    allocs = fetch_list(settings, "/v1/allocations", params, wait)
    if settings.json_output:
        print_json(allocs)
        return
    if not allocs:
        echo("No allocations.")
        return
    table(ALLOC_HEADERS, alloc_rows(allocs, time.time() * 1000))


def port_text(ports: dict[str, Any] | None, address: str | None) -> str | None:
    if not ports:
        return None
    host = address or "node"
    return ", ".join(f"{name} {host}:{port}" for name, port in sorted(ports.items()))


def resources_text(res: dict[str, Any] | None) -> str | None:
    if not res:
        return None
    parts = []
    if res.get("cpu") is not None:
        parts.append(f"{res['cpu']} MHz CPU")
    if res.get("memory") is not None:
        parts.append(f"{res['memory']} MB memory")
    return ", ".join(parts) or None


def alloc_summary_rows(
    doc: dict[str, Any], node_address: str | None, now_ms: float
) -> list[tuple[str, Any]]:
    desired = doc.get("desired_status")
    if doc.get("desired_reason"):
        desired = f"{desired} ({doc['desired_reason']})"
    job = doc.get("job")
    rows: list[tuple[str, Any]] = [
        ("ID", doc.get("id")),
        ("Name", doc.get("name")),
        ("Job", f"{job} (version {doc.get('job_version')}, {doc.get('job_type') or 'service'})"),
        ("Group", doc.get("group")),
        ("Node", f"{doc.get('node_name')} ({short_id(doc.get('node'))})"),
        ("Status", doc.get("status")),
        ("Desired", desired),
        ("Healthy", doc.get("healthy")),
        ("Restarts", doc.get("restarts", 0)),
        ("Resources", resources_text(doc.get("resources"))),
        ("Ports", port_text(doc.get("ports"), node_address)),
        (
            "Created",
            f"{fmt_time(doc.get('create_time'))} ({fmt_age(doc.get('create_time'), now_ms)})",
        ),
    ]
    if doc.get("previous_alloc"):
        rows.append(("Replaces", short_id(doc["previous_alloc"])))
    return rows


def task_rows(doc: dict[str, Any], now_ms: float) -> list[tuple[Any, ...]]:
    states: dict[str, Any] = doc.get("task_states") or {}
    names = list(doc.get("tasks") or [])
    names += [n for n in states if n not in names]
    rows = []
    for name in names:
        t = states.get(name) or {}
        rows.append(
            (
                name,
                t.get("state") or "pending",
                t.get("restarts", 0),
                t.get("exit_code"),
                fmt_age(t.get("started_at"), now_ms),
                fmt_age(t.get("finished_at"), now_ms),
                t.get("failed"),
            )
        )
    return rows


def event_rows(events: list[dict[str, Any]], now_ms: float) -> list[tuple[Any, ...]]:
    """Oldest first, each with how long ago it happened."""
    ordered = sorted(events, key=lambda e: e.get("ts") or 0)
    return [
        (fmt_age(e.get("ts"), now_ms), e.get("type"), e.get("task"), e.get("message"))
        for e in ordered
    ]


async def alloc_and_address(api: ApiClient, ref: str) -> tuple[dict[str, Any], str | None]:
    """The allocation, and its node's address for the ports (if the node is still known)."""
    doc = await api.get_allocation(ref)
    try:
        node = await api.get_node(doc["node"])
    except ApiClientError:
        return doc, None
    return doc, node.get("address")


@alloc.command("status")
@click.argument("alloc_id", metavar="ALLOC", shell_complete=complete_allocations)
@api_options
@pass_settings
def status(settings: Settings, alloc_id: str) -> None:
    """Show an allocation: task states, restarts, health, ports and its events.

    ALLOC is an allocation id or a unique prefix of 4 characters or more.
    """
    if settings.json_output:
        print_json(call(settings, lambda api: api.get_allocation(alloc_id)))
        return
    doc, address = call(settings, lambda api: alloc_and_address(api, alloc_id))
    now = time.time() * 1000
    key_values(alloc_summary_rows(doc, address, now))
    heading("Tasks")
    table(
        ["TASK", "STATE", "RESTARTS", "EXIT CODE", "STARTED", "FINISHED", "FAILED"],
        task_rows(doc, now),
    )
    heading("Events")
    events = doc.get("events") or []
    if events:
        table(["WHEN", "TYPE", "TASK", "MESSAGE"], event_rows(events, now))
    else:
        echo("None.")


@alloc.command("stop")
@click.argument("alloc_id", metavar="ALLOC", shell_complete=complete_allocations)
@api_options
@pass_settings
def stop(settings: Settings, alloc_id: str) -> None:
    """Stop an allocation; a service job gets a replacement from the scheduler.

    ALLOC is an allocation id or a unique prefix of 4 characters or more.
    """
    doc = call(settings, lambda api: api.stop_allocation(alloc_id))
    if settings.json_output:
        print_json(doc)
        return
    reason = doc.get("desired_reason") or "stopped"
    then = (
        "; the scheduler places a replacement"
        if (doc.get("job_type") or "service") == "service"
        else ""
    )
    echo(
        f"Allocation {short_id(doc.get('id'))} ({doc.get('name') or NONE}) on "
        f"{doc.get('node_name') or NONE} is stopping: {reason}{then}."
    )


class RestartNotSeen(click.ClickException):
    pass


async def restart_and_wait(
    api: ApiClient, ref: str, task: str | None, timeout: float | None
) -> dict[str, Any]:
    """Ask for the restart; with a ``timeout``, wait (blocking queries on the
    allocation) until its node reports it handled the request."""
    doc = await api.restart_allocation(ref, task)
    if timeout is None:
        return doc
    asked = (doc.get("restart_requested") or {}).get("index") or 0
    path = f"/v1/allocations/{quote(doc['id'], safe='')}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    index: int | None = None
    while (doc.get("restart_handled") or 0) < asked:
        if doc.get("status") != "running" or doc.get("desired_status") != "run":
            raise RestartNotSeen(
                f"allocation {short_id(doc['id'])} is {doc.get('status')} (desired "
                f"{doc.get('desired_status')}) now: it was not restarted"
            )
        left = deadline - loop.time()
        if left <= 0:
            raise RestartNotSeen(
                f"allocation {short_id(doc['id'])}: its node has not restarted it after "
                f"{timeout:g}s; the request stays (see `heroctl alloc status {short_id(doc['id'])}`)"
            )
        wait = None if index is None else max(0.01, min(RESTART_BLOCK_SECONDS, left))
        doc, index = await api.blocking_get(path, index=index, wait=wait)
    return doc


@alloc.command("restart")
@click.argument("alloc_id", metavar="ALLOC", shell_complete=complete_allocations)
@click.option("--task", metavar="TASK", help="Restart only this task (default: every task).")
@click.option("--detach", is_flag=True, help="Return once asked; do not wait for the node.")
@click.option(
    "--timeout",
    type=Duration(),
    default="1m",
    show_default=True,
    metavar="DURATION",
    help="How long to wait for the node to restart it before giving up (exit 1).",
)
@api_options
@pass_settings
def restart(
    settings: Settings, alloc_id: str, task: str | None, detach: bool, timeout: float
) -> None:
    """Restart a running allocation's tasks in place: same allocation, same node.

    Its node stops each task and starts it again (a new container or
    process); each task's restart count goes up by one, without using up
    its restart policy's attempts. Unless --detach, waits until the node
    reports it done. ALLOC is an allocation id or a unique prefix of 4
    characters or more.
    """
    doc = call(
        settings, lambda api: restart_and_wait(api, alloc_id, task, None if detach else timeout)
    )
    if settings.json_output:
        print_json(doc)
        return
    what = f"task '{task}'" if task else "its tasks"
    where = f"Allocation {short_id(doc.get('id'))} ({doc.get('name') or NONE}) on "
    where += doc.get("node_name") or NONE
    if detach:
        echo(f"{where}: restart of {what} requested; its node restarts them in place.")
        return
    total = doc.get("restarts", 0)
    echo(f"{where}: {what} restarted in place ({total} restart{'' if total == 1 else 's'} in all).")
