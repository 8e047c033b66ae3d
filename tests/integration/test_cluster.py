"""A real 3-server cluster: replication, failover, restarts, transfer, membership."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, Server, wait_until


def submit(server: Server, name: str, **meta: object) -> dict:
    r = server.post("/v1/jobs", {"name": name, "meta": {k: str(v) for k, v in meta.items()}})
    assert r.status in (200, 201), (r.status, r.raw)
    return r.body


def submit_eventually(
    servers: list[Server], name: str, timeout: float = 10.0
) -> tuple[dict, float]:
    """Retry a write on live servers until one acknowledges it; returns (doc, seconds)."""
    start = time.monotonic()

    def attempt() -> dict | None:
        for s in servers:
            try:
                r = s.post("/v1/jobs", {"name": name}, timeout=3)
            except OSError:
                continue
            if r.status in (200, 201):
                return r.body
        return None

    doc = wait_until(attempt, timeout, interval=0.02, message=f"write of {name}")
    return doc, time.monotonic() - start


def test_bootstrap_elects_one_leader(cluster3: Cluster) -> None:
    statuses = [s.status() for s in cluster3.servers]
    assert sum(1 for st in statuses if st["is_leader"]) == 1
    assert len({st["leader"] for st in statuses}) == 1
    assert all(st["members"] == 3 and st["healthy"] for st in statuses)
    peers = cluster3.servers[0].get("/v1/cluster/peers").body
    assert sorted(p["name"] for p in peers) == ["server-1", "server-2", "server-3"]
    assert [p["role"] for p in peers].count("leader") == 1
    assert all(p["voter"] and p["api_address"].startswith("https://127.0.0.1:") for p in peers)


def test_write_on_follower_is_readable_everywhere_at_once(cluster3: Cluster) -> None:
    follower = cluster3.followers()[0]
    for i in range(20):
        doc = submit(follower, f"job-{i}", n=i)
        for s in cluster3.servers:  # consistent reads: no waiting
            r = s.get(f"/v1/jobs/job-{i}")
            assert r.status == 200 and r.body["job_modify_index"] == doc["job_modify_index"]
            assert int(r.header("X-HeroCtl-Index")) >= doc["job_modify_index"]


def test_kill_leader_new_leader_writes_resume_and_node_catches_up(cluster3: Cluster) -> None:
    submit(cluster3.leader(), "before")
    old = cluster3.leader()
    old.kill()
    rest = cluster3.live()
    _, took = submit_eventually(rest, "after")
    new = cluster3.leader(among=rest)
    assert new is not old
    for i in range(10):
        submit(new, f"while-down-{i}")
    old.start(peers=cluster3.peers)
    cluster3.wait_ready([old])
    wait_until(lambda: len(old.get("/v1/jobs?stale=true").body) == 12, 10, message="catch up")
    names = {j["name"] for j in old.get("/v1/jobs").body}
    assert {"before", "after", "while-down-9"} <= names
    assert took < 10


def test_full_restart_keeps_every_job(cluster3: Cluster) -> None:
    docs = [submit(cluster3.servers[i % 3], f"keep-{i}", i=i) for i in range(30)]
    for s in cluster3.servers:
        s.kill()  # every node at once, no clean shutdown
    cluster3.start()
    for s in cluster3.servers:
        jobs = {j["name"]: j for j in s.get("/v1/jobs").body}
        for d in docs:
            assert jobs[d["name"]]["job_modify_index"] == d["job_modify_index"]


def test_clean_restart_after_compaction(tmp_path: Path) -> None:
    # A low compaction threshold makes every server write msgpack snapshots.
    c = Cluster(
        tmp_path,
        3,
        env={"HEROCTL_RAFT_COMPACTION_MIN_ENTRIES": "50", "HEROCTL_RAFT_COMPACTION_MIN_TIME": "3"},
    ).start()
    try:
        for i in range(300):
            submit(c.servers[i % 3], f"snap-{i % 40}", i=i)
        wait_until(
            lambda: all((s.data_dir / "raft.snapshot").exists() for s in c.servers),
            30,
            message="snapshots on every server",
        )
        for s in c.servers:
            assert s.stop() == 0
            # ...because it ended by itself, not through the forced exit after
            # a task ignored its cancellation (heroctld.main.exit_soon).
            assert "exit still blocked" not in s.log(), s.log()[-3000:]
        c.start()
        for s in c.servers:
            jobs = s.get("/v1/jobs").body
            assert len(jobs) == 40
            assert s.get("/v1/jobs/snap-19").body["meta"]["i"] == "299"
    finally:
        c.stop()


def test_transfer_leadership_to_named_node(cluster3: Cluster) -> None:
    leader = cluster3.leader()
    target = next(s for s in cluster3.servers if s is not leader)
    via = next(s for s in cluster3.servers if s not in (leader, target))  # a follower relays it
    r = via.post("/v1/raft/transfer-leadership", {"to": target.name})
    assert r.status == 200, r.raw
    assert r.body["leader"] == target.name
    wait_until(
        lambda: all(s.status()["leader"] == target.name for s in cluster3.servers),
        10,
        message="everyone sees the new leader",
    )
    submit(via, "after-transfer")
    r = leader.post("/v1/raft/transfer-leadership", {})  # without a target: most caught-up peer
    assert r.status == 200 and r.body["leader"] != target.name
    r = leader.post("/v1/raft/transfer-leadership", {"to": "no-such-server"})
    assert r.status == 404 and r.body["error"] == "peer_not_found"


def test_add_fourth_server_and_remove_one(cluster3: Cluster) -> None:
    submit(cluster3.leader(), "existing")
    fourth = cluster3.add_server("server-4")
    fourth.start(join=f"127.0.0.1:{cluster3.followers()[0].api_port}")
    cluster3.wait_ready([fourth])
    wait_until(
        lambda: fourth.get("/v1/cluster/status").body["members"] == 4, 15, message="4 members"
    )
    assert fourth.get("/v1/jobs/existing").status == 200
    peers = cluster3.leader().get("/v1/cluster/peers").body
    assert "server-4" in {p["name"] for p in peers}
    # Remove a follower that is not the new one.
    victim = next(s for s in cluster3.followers() if s is not fourth)
    r = fourth.delete(f"/v1/cluster/peers/{victim.name}")
    assert r.status == 200, r.raw
    victim.stop()
    rest = cluster3.live()
    wait_until(lambda: all(s.status()["members"] == 3 for s in rest), 15, message="3 members")
    submit(fourth, "after-removal")
    assert {p["name"] for p in rest[0].get("/v1/cluster/peers").body} == {s.name for s in rest}
    # The removed server's data dir restarting does not come back as a member.
    assert cluster3.leader().delete("/v1/cluster/peers/ghost").status == 404


def test_sigstopped_leader_is_replaced_and_steps_down(cluster3: Cluster) -> None:
    old = cluster3.leader()
    rest = [s for s in cluster3.servers if s is not old]
    old.pause()
    try:
        _, took = submit_eventually(rest, "during-pause")
        new = cluster3.leader(among=rest)
        assert new is not old and took < 10
    finally:
        old.resume()
    # The old leader rejoins as a follower and serves the new write.
    wait_until(
        lambda: old.status()["leader"] == new.name and not old.status()["is_leader"],
        10,
        message="old leader follows",
    )
    assert old.get("/v1/jobs/during-pause").status == 200


def iptables_usable() -> bool:
    import shutil
    import subprocess

    return (
        bool(shutil.which("iptables"))
        and subprocess.run(["iptables", "-L", "-n"], capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not iptables_usable(), reason="iptables is not usable here")
def test_partitioned_leader_stops_taking_writes(cluster3: Cluster) -> None:
    import subprocess

    # pysyncobj keeps one connection per pair, dialled by the greater address:
    # with the lowest address as leader, every raft packet of the leader goes
    # through its raft port, so a DROP on that port cuts it off completely.
    old = min(cluster3.servers, key=lambda s: s.raft_address)
    if cluster3.leader() is not old:
        r = cluster3.servers[0].post("/v1/raft/transfer-leadership", {"to": old.name})
        assert r.status == 200, r.raw
    wait_until(lambda: old.status()["is_leader"], 10, message="chosen leader")
    rest = [s for s in cluster3.servers if s is not old]
    rules = [
        ["INPUT", "-p", "tcp", "--dport", str(old.raft_port), "-j", "DROP"],
        ["INPUT", "-p", "tcp", "--sport", str(old.raft_port), "-j", "DROP"],
    ]
    added = []
    try:
        for rule in rules:
            subprocess.run(["iptables", "-I", *rule], check=True)
            added.append(rule)
        cut_at = time.monotonic()
        # Within about two election timeouts the old leader knows it is not leading.
        wait_until(
            lambda: not old.status()["is_leader"], 5, interval=0.02, message="old leader steps down"
        )
        stepped_down = time.monotonic() - cut_at
        assert stepped_down < 4.0
        submit_eventually(rest, "majority-write")
        new = cluster3.leader(among=rest)
        assert new is not old
        r = old.post("/v1/jobs", {"name": "minority-write"}, timeout=15)
        assert r.status == 503 and r.body["error"] == "no_leader"
        r = old.get("/v1/jobs/majority-write", timeout=15)
        assert r.status == 503  # never a stale answer presented as current
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", *rule], check=False)
    wait_until(
        lambda: old.get("/v1/jobs/majority-write", timeout=5).status == 200, 20, message="healed"
    )
    assert new.get("/v1/jobs/minority-write").status == 404


def test_no_majority_gives_503_within_bounded_time(cluster3: Cluster) -> None:
    keeper = cluster3.servers[0]
    for s in cluster3.servers[1:]:
        s.kill()
    start = time.monotonic()
    r = keeper.post("/v1/jobs", {"name": "lonely"}, timeout=30)
    assert r.status == 503 and r.body["error"] == "no_leader"
    r2 = keeper.get("/v1/jobs", timeout=30)
    assert r2.status == 503 and r2.body["error"] == "no_leader"
    assert time.monotonic() - start < 15
    assert keeper.get("/v1/jobs?stale=true").status == 200
    assert keeper.get("/v1/health/ready").status == 503


def test_wrong_cluster_key_cannot_join_and_says_so(tmp_path: Path, cluster3: Cluster) -> None:
    intruder = Server("intruder", tmp_path, cluster_key="another-key-entirely-0123456789")
    intruder.start(join=f"127.0.0.1:{cluster3.servers[0].api_port}")
    try:
        assert intruder.proc is not None and intruder.proc.wait(30) != 0
        assert "different cluster key" in intruder.log()
        st = cluster3.servers[0].status()
        assert st["members"] == 3 and st["healthy"]
    finally:
        intruder.kill()


def test_wrong_cluster_key_member_is_refused_and_logged(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 3)
    c.servers[2].cluster_key = "another-key-entirely-0123456789"
    c.start(wait=False)
    try:
        good = c.servers[:2]
        c.wait_ready(good)
        wait_until(
            lambda: any("different cluster key" in s.log() for s in c.servers),
            20,
            message="a key mismatch in some log",
        )
        assert not c.servers[2].ready()
        assert c.servers[0].post("/v1/jobs", {"name": "still-works"}).status == 201
    finally:
        c.stop()
