"""`heroctl cluster ...`: status, peers, leadership transfer, membership."""

from __future__ import annotations

from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, fmt_duration_ms, key_values, print_json, table, yes_no
from cli.verbs import destructive


@click.group()
def cluster() -> None:
    """The control plane: raft members and leadership."""


def _server(name: Any, raft_address: Any) -> str:
    if name and raft_address:
        return f"{name} ({raft_address})"
    return str(name or raft_address or "none")


def status_rows(st: dict[str, Any]) -> list[tuple[str, Any]]:
    leader = _server(st.get("leader"), st.get("leader_raft_address"))
    if st.get("leader_api_address"):
        leader += f", API {st['leader_api_address']}"
    if not st.get("leader_raft_address"):
        leader = "none known"
    role = "leader" if st.get("is_leader") else "follower"
    health = "healthy" if st.get("healthy") else "UNHEALTHY"
    return [
        ("Leader", leader),
        ("This server", f"{_server(st.get('node'), st.get('raft_address'))}, {role}"),
        (
            "Health",
            f"{health}: {st.get('reachable_members')}/{st.get('members')} members reachable",
        ),
        ("Raft term", st.get("raft_term")),
        (
            "Commit index",
            f"{st.get('commit_index')} (applied {st.get('applied_index')}, "
            f"state {st.get('state_index')})",
        ),
    ]


@cluster.command("status")
@api_options
@pass_settings
def status(settings: Settings) -> None:
    """Show the leader, health and raft progress.

    As seen by the server you talk to (`--address`).
    """
    st = call(settings, lambda api: api.cluster_status())
    if settings.json_output:
        print_json(st)
        return
    key_values(status_rows(st))


@cluster.command("peers")
@api_options
@pass_settings
def peers(settings: Settings) -> None:
    """List the raft members.

    With whether the server you talk to hears from each, and how recently.
    """
    rows = call(settings, lambda api: api.cluster_peers())
    if settings.json_output:
        print_json(rows)
        return
    table(
        ["NAME", "RAFT ADDRESS", "API ADDRESS", "ROLE", "VOTER", "CONNECTED", "LAST CONTACT"],
        [
            (
                p.get("name"),
                p.get("raft_address"),
                p.get("api_address"),
                p.get("role"),
                yes_no(p.get("voter")),
                yes_no(p.get("connected")),
                fmt_duration_ms(p.get("last_contact_ms")),
            )
            for p in rows
        ],
    )


@cluster.command("transfer-leadership")
@click.option("--to", "to", metavar="NODE", help="Server name or raft address (default: any).")
@api_options
@pass_settings
def transfer_leadership(settings: Settings, to: str | None) -> None:
    """Hand leadership to another server.

    Do this before restarting the leader. Without --to, raft picks a member
    that is caught up.
    """
    result = call(settings, lambda api: api.transfer_leadership(to))
    if settings.json_output:
        print_json(result)
        return
    echo(
        f"Leadership transferred to {_server(result.get('leader'), result.get('leader_raft_address'))}."
    )


@cluster.command("leave")
@destructive("Remove server '{name}' from the cluster's raft configuration?")
@click.argument("name")
@api_options
@pass_settings
def leave(settings: Settings, name: str) -> None:
    """Remove a server from the raft configuration.

    NAME is a server name or raft address. Removing the leader hands
    leadership over first.
    """
    result = call(settings, lambda api: api.remove_peer(name))
    if settings.json_output:
        print_json(result)
        return
    echo(f"Removed {_server(result.get('name'), result.get('removed'))} from the cluster.")
