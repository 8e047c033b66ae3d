"""Drains: the scheduler migrates replicas (replacement healthy first); this
controller enforces the deadline and marks the drain complete."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from raft.replica import CommandRejected, NoLeader, Replica

log = logging.getLogger("heroctld.drainer")


def drain_actions(
    nodes: dict[str, Any], live_by_node: dict[str, list[str]], now_ms: int
) -> tuple[list[str], list[str]]:
    """(allocations to force-stop, nodes whose drain is complete). Pure."""
    force, done = [], []
    for node_id, node in nodes.items():
        drain = node.get("drain")
        if not drain:
            continue
        live = live_by_node.get(node_id, [])
        if not live:
            done.append(node_id)
        elif now_ms >= drain.get("deadline_at", 0):
            force.extend(live)
    return force, done


async def drain_loop(replica: Replica, every: float = 0.5) -> None:
    while True:
        with replica.read() as view:
            nodes = {k: v for k, v in view.nodes.items() if v.get("drain")}
            live = {
                node_id: [
                    a["id"]
                    for a in view.allocs.by_node(node_id)
                    if a["desired_status"] == "run" and a["status"] in ("pending", "running")
                ]
                for node_id in nodes
            }
        force, done = drain_actions(nodes, live, int(time.time() * 1000))
        try:
            for alloc_id in force:
                await replica.write("alloc.stop", id=alloc_id, reason="node drain deadline reached")
            for node_id in done:
                await replica.write("node.drain_complete", id=node_id)
                log.info("drain of node %s complete", nodes[node_id].get("name"))
        except (NoLeader, CommandRejected) as e:
            log.info("drain step postponed: %s", e)
        await asyncio.sleep(every)
