"""Node heartbeats: kept in the leader's memory; only down/ready transitions are replicated."""

from __future__ import annotations

import asyncio
import logging

from domain.heartbeats import Heartbeats
from raft.replica import CommandRejected, NoLeader, Replica

log = logging.getLogger("heroctld.heartbeats")


async def heartbeat_monitor(replica: Replica, beats: Heartbeats, every: float = 0.5) -> None:
    beats.reset()
    while True:
        with replica.read() as view:
            nodes = view.nodes.copy()
        for node_id in beats.expired(nodes):
            try:
                await replica.write("node.status", id=node_id, status="down")
                log.warning(
                    "node %s missed its heartbeats for %ss: down",
                    nodes[node_id].get("name"),
                    beats.ttl,
                )
            except (NoLeader, CommandRejected) as e:
                log.info("could not mark node %s down: %s", node_id, e)
        await asyncio.sleep(every)
