"""Durability of real servers on disk errors: a journal whose disk fills up
stops its server with a clear error (never SIGBUS), and a failed fsync stops
a leader's acknowledgements; in both cases no acknowledged write is lost."""

from __future__ import annotations

import threading
from pathlib import Path

from raft.fatal import EXIT_STORAGE
from raft.journal import FAULT_FSYNC_ENV
from tests.raft.tmpfs import resize, tmpfs
from tests.support.cluster import Cluster, Server, wait_until

PADDING = "x" * 1000  # about 1.3 KiB of journal per write


def write(server: Server, name: str) -> bool:
    """True if the server acknowledged the write."""
    try:
        r = server.post("/v1/jobs", {"name": name, "meta": {"pad": PADDING}}, timeout=5)
    except OSError:
        return False
    return r.status in (200, 201)


def test_a_full_disk_stops_the_server_and_loses_no_acknowledged_write(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        cluster = Cluster(tmp_path, 1, env={"HEROCTL_RAFT_COMPACTION_MIN_ENTRIES": "1000000"})
        server = cluster.servers[0]
        server.data_dir = disk / server.name  # the journal on the small disk, the log beside
        try:
            cluster.start()
            acknowledged: list[str] = []
            lock = threading.Lock()

            def client(n: int) -> None:
                for i in range(5000):
                    if not server.alive:
                        return
                    if write(server, f"fill-{n}-{i}"):
                        with lock:
                            acknowledged.append(f"fill-{n}-{i}")

            clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for c in clients:
                c.start()
            for c in clients:
                c.join(120)
            assert server.proc is not None
            assert server.proc.wait(30) == EXIT_STORAGE  # a clear exit, not -SIGBUS
            assert "no space left on the disk of the journal" in server.log()
            assert len(acknowledged) > 500

            resize(disk, "64m")
            server.start(peers=cluster.peers)
            cluster.wait_ready()
            missing = [n for n in acknowledged if server.get(f"/v1/jobs/{n}").status != 200]
            assert not missing, f"{len(missing)} acknowledged writes lost"
            assert write(server, "after-space-freed")
        finally:
            cluster.stop()


def test_an_fsync_error_stops_the_leaders_acknowledgements(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    for s in cluster.servers:
        s.env[FAULT_FSYNC_ENV] = str(tmp_path / f"{s.name}.fsync-fault")
    try:
        cluster.start()
        leader = cluster.leader()
        acknowledged = [f"before-{i}" for i in range(20) if write(leader, f"before-{i}")]
        assert len(acknowledged) == 20

        Path(leader.env[FAULT_FSYNC_ENV]).touch()
        late = [write(leader, f"late-{i}") for i in range(10)]
        assert not any(late), "a write was acknowledged after the fsync failure"
        assert leader.proc is not None and leader.proc.wait(10) == EXIT_STORAGE
        assert "flushing the journal" in leader.log() and "[exit code 74]" in leader.log()

        others = [s for s in cluster.servers if s is not leader]
        new_leader = cluster.leader(among=others)
        acknowledged += [n for n in ("after-1", "after-2") if write(new_leader, n)]
        assert len(acknowledged) == 22

        Path(leader.env[FAULT_FSYNC_ENV]).unlink()  # the disk is fine again: restart it
        leader.start(peers=cluster.peers)
        cluster.wait_ready()
        for s in cluster.servers:
            wait_until(
                lambda s=s: all(s.get(f"/v1/jobs/{n}").status == 200 for n in acknowledged),
                15,
                message=f"every acknowledged write on {s.name}",
            )
    finally:
        cluster.stop()
