"""`heroctl node ...`: the machines that run allocations (list, inspect, drain, mark)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.completion import complete_nodes
from cli.output import (
    Duration,
    echo,
    fmt_age,
    fmt_seconds,
    fmt_time,
    fmt_until,
    heading,
    key_values,
    print_json,
    short_id,
    table,
    used_of,
)
from cli.verbs import destructive
from cli.waiting import fetch_list, wait_option
from client import ApiClient, ApiClientError

T = TypeVar("T")


@click.group()
def node() -> None:
    """Nodes: the machines whose agents run allocations."""


async def on_node(api: ApiClient, ref: str, action: Callable[[str], Awaitable[T]]) -> T:
    """Run `action(ref)`; a ref the server does not know (id or name) may be an id prefix
    as `node list` prints it, resolved here when it names exactly one node."""
    try:
        return await action(ref)
    except ApiClientError as e:
        if e.status != 404 or e.code != "node_not_found":
            raise
        matches = [n["id"] for n in await api.list_nodes() if n["id"].startswith(ref)]
        if len(matches) > 1:
            shown = ", ".join(sorted(matches))
            raise click.ClickException(
                f"node id prefix '{ref}' matches {len(matches)} nodes ({shown}); give more of it"
            ) from None
        if not matches:
            raise
        return await action(matches[0])


def node_rows(nodes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows = []
    for n in nodes:
        allocated = n.get("allocated") or {}
        rows.append(
            (
                n.get("name"),
                short_id(n.get("id")),
                n.get("status"),
                n.get("eligibility"),
                allocated.get("allocations", 0),
                used_of(allocated.get("cpu"), n.get("cpu"), "MHz"),
                used_of(allocated.get("memory"), n.get("memory"), "MB"),
                n.get("address"),
            )
        )
    return rows


NODE_HEADERS = ["NAME", "ID", "STATUS", "ELIGIBILITY", "ALLOCS", "CPU", "MEMORY", "ADDRESS"]


@node.command("list")
@wait_option()
@api_options
@pass_settings
def list_(settings: Settings, wait: float | None) -> None:
    """List nodes: status, eligibility, allocations and what they reserve.

    CPU and MEMORY are reserved by live allocations / the node's total.
    """
    nodes = fetch_list(settings, "/v1/nodes", wait=wait)
    if settings.json_output:
        print_json(nodes)
        return
    if not nodes:
        echo("No nodes. Every heroctld runs an agent unless --no-agent; see `heroctld agent`.")
        return
    table(NODE_HEADERS, node_rows(nodes))


def drain_text(drain: dict[str, Any] | None, now_ms: float) -> str | None:
    if not drain:
        return None
    deadline = drain.get("deadline_at")
    return f"deadline {fmt_time(deadline)} ({fmt_until(deadline, now_ms)})"


def node_summary_rows(doc: dict[str, Any], now_ms: float) -> list[tuple[str, Any]]:
    last = doc.get("last_drain") or {}
    rows: list[tuple[str, Any]] = [
        ("Name", doc.get("name")),
        ("ID", doc.get("id")),
        ("Address", doc.get("address")),
        ("Status", doc.get("status")),
        ("Eligibility", doc.get("eligibility")),
        ("Drain", drain_text(doc.get("drain"), now_ms) or "no"),
        ("Drivers", doc.get("drivers")),
        ("Registered", fmt_time(doc.get("registered_at"))),
        (
            "Status since",
            f"{fmt_time(doc.get('status_updated_at'))} "
            f"({fmt_age(doc.get('status_updated_at'), now_ms)})",
        ),
    ]
    if last:
        rows.append(("Last drain", f"completed {fmt_time(last.get('completed_at'))}"))
    for key, value in sorted((doc.get("labels") or {}).items()):
        rows.append((f"Label {key}", value))
    return rows


UNITS = {"cpu": "MHz", "memory": "MB", "disk": "MB"}


def resource_rows(resources: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for kind in ("cpu", "memory", "disk"):
        r = resources.get(kind) or {}
        total = r.get("total")
        rows.append(
            (
                kind,
                f"{total} {UNITS[kind]}" if total is not None else None,
                used_of(r.get("allocated"), total) if r.get("allocated") is not None else None,
                used_of(r.get("used"), total) if r.get("used") is not None else None,
            )
        )
    return rows


def alloc_brief_rows(allocs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    ordered = sorted(allocs, key=lambda a: (a.get("job") or "", a.get("name") or ""))
    return [
        (
            short_id(a.get("id")),
            a.get("name"),
            a.get("status"),
            a.get("desired_status"),
            a.get("healthy"),
        )
        for a in ordered
    ]


@node.command("status")
@click.argument("node_ref", metavar="NODE", shell_complete=complete_nodes)
@api_options
@pass_settings
def status(settings: Settings, node_ref: str) -> None:
    """Show a node: status, drain, resources (total/allocated/used) and its allocations.

    NODE is a node name, id or unique id prefix. USED is what the node's agent
    last reported (unknown until its first heartbeat with usage).
    """
    doc = call(settings, lambda api: on_node(api, node_ref, api.get_node))
    if settings.json_output:
        print_json(doc)
        return
    key_values(node_summary_rows(doc, time.time() * 1000))
    heading("Resources")
    table(["RESOURCE", "TOTAL", "ALLOCATED", "USED"], resource_rows(doc.get("resources") or {}))
    allocs = doc.get("allocations") or []
    heading("Allocations")
    if allocs:
        table(["ID", "NAME", "STATUS", "DESIRED", "HEALTHY"], alloc_brief_rows(allocs))
    else:
        echo("None.")


@node.command("drain")
@destructive(
    "Drain node '{node_ref}': move its allocations off and stop what has not moved "
    "by the deadline?",
    unless=lambda params: params["disable"] or params["keep_ineligible"],  # undo, or a usage error
)
@click.argument("node_ref", metavar="NODE", shell_complete=complete_nodes)
@click.option(
    "--deadline",
    type=Duration(),
    default=None,
    metavar="DURATION",
    help="Stop what has not moved by then (like 5m; default: the server's, 1h).",
)
@click.option("--disable", is_flag=True, help="Cancel the node's drain instead.")
@click.option(
    "--keep-ineligible",
    is_flag=True,
    help="With --disable: leave the node ineligible for new allocations.",
)
@api_options
@pass_settings
def drain(
    settings: Settings,
    node_ref: str,
    deadline: float | None,
    disable: bool,
    keep_ineligible: bool,
) -> None:
    """Move a node's allocations elsewhere (each replacement healthy first).

    The node is ineligible from now on and stays so after the drain; what
    has not moved by the deadline is stopped. `--disable` cancels a drain
    (and makes the node eligible again unless `--keep-ineligible`).
    """
    if disable and deadline is not None:
        raise click.UsageError("--deadline starts a drain; it cannot go with --disable")
    if keep_ineligible and not disable:
        raise click.UsageError("--keep-ineligible only goes with --disable")
    seconds = None if deadline is None else int(round(deadline))

    def action(api: ApiClient) -> Awaitable[dict[str, Any]]:
        return on_node(
            api,
            node_ref,
            lambda ref: api.drain_node(
                ref, seconds, enable=not disable, keep_ineligible=keep_ineligible
            ),
        )

    doc = call(settings, action)
    if settings.json_output:
        print_json(doc)
        return
    name = doc.get("name") or node_ref
    if disable:
        after = "it stays ineligible" if doc.get("eligibility") != "eligible" else "it is eligible"
        echo(f"Drain of node '{name}' cancelled; {after} for new allocations.")
        return
    d = doc.get("drain") or {}
    echo(
        f"Node '{name}' is draining: its allocations move to other nodes; what is left "
        f"is stopped at {fmt_time(d.get('deadline_at'))} "
        f"(deadline {fmt_seconds(d.get('deadline_seconds'))}). "
        "It stays ineligible for new allocations afterwards."
    )


@node.command("eligibility")
@click.argument("node_ref", metavar="NODE", shell_complete=complete_nodes)
@click.option(
    "--enable/--disable",
    "eligible",
    default=None,
    help="Whether the scheduler may place new allocations on the node.",
)
@api_options
@pass_settings
def eligibility(settings: Settings, node_ref: str, eligible: bool | None) -> None:
    """Mark a node eligible (--enable) or ineligible (--disable) for new allocations.

    Ineligible nodes keep what they run; a draining node cannot be made
    eligible (cancel the drain with `node drain --disable`).
    """
    if eligible is None:
        raise click.UsageError("give --enable or --disable")

    def action(api: ApiClient) -> Awaitable[dict[str, Any]]:
        return on_node(api, node_ref, lambda ref: api.node_eligibility(ref, eligible))

    doc = call(settings, action)
    if settings.json_output:
        print_json(doc)
        return
    echo(f"Node '{doc.get('name') or node_ref}' is {doc.get('eligibility')} for new allocations.")
