"""Real raft nodes (raft.node over pysyncobj) meeting an entry of a newer
format than they read: each stops before applying it (raft.formats), and
the entry stays in the log after the last applied one (a restart meets it again).

A node stops as soon as it would apply the entry, so the leader stops before
it tells every follower the entry is committed: a majority stops (the one
left cannot elect anyone), and none applied anything of it."""

from __future__ import annotations

from pathlib import Path

from raft.commands import encode_batch, encode_command, new_command
from raft.fatal import EXIT_TOO_OLD, FormatTooNew
from tests.raft.raft_nodes import Cluster, Node, wait_for

WEB = {"name": "web", "groups": [{"name": "web", "count": 1, "tasks": [{"name": "web"}]}]}


def stopped(nodes: list[Node]) -> int:
    return sum(1 for n in nodes if n.fatal)


def test_every_node_stops_before_applying_an_entry_of_a_newer_format(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    try:
        cluster.write(3)
        leader = cluster.leader()
        last = leader.raft.applied_index
        wait_for(lambda: all(n.raft.applied_index == last for n in cluster.nodes), 10, "caught up")
        entry = encode_batch(
            [
                encode_command(new_command("job.upsert", job=WEB)),
                encode_command(new_command("job.upsert", job={**WEB, "name": "b"}, v=2)),
            ]
        )
        leader.raft.propose(entry, "newer")
        wait_for(lambda: stopped(cluster.nodes) >= 2, 10, "a majority stopped")
        assert leader.fatal
        for node in cluster.nodes:
            for error in node.fatal:
                assert isinstance(error, FormatTooNew) and error.exit_code == EXIT_TOO_OLD
                assert "upgrade this server" in str(error)
            assert node.state.tables["jobs"] == {}  # not even the batch's first command
            assert node.raft.applied_index == last  # pysyncobj did not count it applied
            assert "newer" not in node.done  # nothing acknowledged
        # The entry stays in the leader's log, after the last one applied: a
        # restart replays it and stops again, never past it.
        assert [e[1] for e in leader.entries()][-1] == last + 1
    finally:
        cluster.stop()
