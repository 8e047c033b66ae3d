"""Backup and restore against real heroctld processes (issue 14 part 3):
`GET /v1/operator/snapshot` saves, `PUT` restores through the log so every
server converges, and a corrupt, truncated, too new or foreign snapshot is
refused with the error envelope and changes nothing.

One 3-server cluster for the module, taking scheduled backups every second
(keeping 2): the refusal test checks that nothing changed by the jobs table's
index, which only a restore or a job write moves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.crypto import KeyMaterial
from domain.snapshot_archive import SnapshotSealer, decode, encode
from raft.backup import take_backup
from raft.fsm import apply_batch
from raft.keys import generate_cluster_key
from raft.state import State
from tests.api.authutil import anon, as_, assert_error, make_token, put_policy
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import Reply

OCTETS = {"Content-Type": "application/octet-stream"}


def exec_job(name: str) -> dict[str, Any]:
    task = {"name": "t", "driver": "exec", "command": "/bin/sleep", "args": ["600"]}
    return {"name": name, "type": "service", "groups": [{"name": "g", "count": 1, "tasks": [task]}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"HEROCTL_BACKUP_INTERVAL": "1", "HEROCTL_BACKUP_KEEP": "2"}
    c = Cluster(tmp_path_factory.mktemp("snapshots"), 3, env=env).start()
    try:
        yield c
    finally:
        c.stop()


def save(server: Server) -> bytes:
    r = server.get("/v1/operator/snapshot", timeout=60)
    assert r.status == 200, r.raw[:300]
    assert r.header("Content-Type") == "application/octet-stream"
    return r.raw


def restore(server: Server, data: bytes) -> Reply:
    return server.put("/v1/operator/snapshot", raw=data, headers=dict(OCTETS), timeout=120)


def job_names(server: Server) -> set[str]:
    return {j["name"] for j in server.get("/v1/jobs?stale=true").body}


def jobs_index(server: Server) -> int:
    return int(server.get("/v1/jobs?stale=true").header("X-HeroCtl-Index") or 0)


def test_save_change_restore_and_every_server_converges(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    assert a.post("/v1/jobs", exec_job("kept")).status in (200, 201)
    assert a.post("/v1/jobs", exec_job("kept")).status in (200, 201)  # version 1
    assert b.post("/v1/secrets", {"name": "db", "value": "before"}).status in (200, 201)
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["job"], "secret": "s3cret"}
    webhook = c.post("/v1/webhooks", hook).body["id"]

    started = time.monotonic()
    data = save(b)
    saved_s = time.monotonic() - started
    header = decode(data, SnapshotSealer(cluster.cluster_key)).header
    assert b"before" not in data  # secrets stay sealed

    assert a.delete("/v1/jobs/kept").status == 200
    assert a.post("/v1/jobs", exec_job("later")).status in (200, 201)
    assert b.post("/v1/secrets", {"name": "db", "value": "after"}).status in (200, 201)
    assert c.delete(f"/v1/webhooks/{webhook}").status == 200
    before = max(jobs_index(s) for s in cluster.servers)

    started = time.monotonic()
    r = restore(c, data)
    restored_s = time.monotonic() - started
    assert r.status == 200, r.raw
    assert r.body["restored_index"] == header["index"] and r.body["index"] > before
    assert r.body["tables"]["jobs"] == 1 and r.body["cluster_id"] == header["cluster_id"]
    for s in cluster.servers:
        wait_until(lambda s=s: job_names(s) == {"kept"}, 15, message=f"{s.name} restored")
        assert jobs_index(s) >= r.body["index"]  # indexes went on growing
        assert [v["version"] for v in s.get("/v1/jobs/kept/versions").body] == [1, 0]
        assert s.get("/v1/secrets/db").body["value"] == "before"
        assert [w["id"] for w in s.get("/v1/webhooks").body] == [webhook]
    # the cluster goes on working after it
    assert a.post("/v1/jobs", exec_job("after-restore")).status in (200, 201)
    for s in cluster.servers:
        wait_until(lambda s=s: "after-restore" in job_names(s), 15, message="a write after")
    print(f"\nsave {len(data)} bytes in {saved_s:.3f}s, restore in {restored_s:.3f}s")


def _reencoded(cluster: Cluster, data: bytes, sealer: SnapshotSealer, **over: Any) -> bytes:
    snap = decode(data)
    fields: dict[str, Any] = {
        "index": snap.index,
        "body": snap.body,
        "tables": snap.tables,
        "server": "x",
        "created_ms": 0,
    }
    fields.update(over)
    return encode(sealer, **fields)


def _foreign_body(index: int) -> bytes:
    """A state whose secret is sealed under another cluster key."""
    keys = KeyMaterial(generate_cluster_key())
    nonce, ciphertext = keys.seal_secret("k1", "db", 1, b"theirs")
    state = State()
    put = {"op": "secret.put", "name": "db", "version": 1, "key_id": "k1", "ts": 1}
    apply_batch(state, [{**put, "nonce": nonce, "ciphertext": ciphertext}], index)
    return take_backup(state).body


def test_refused_snapshots_change_nothing(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    data = save(a)
    own = SnapshotSealer(cluster.cluster_key)
    snap = decode(data)
    flipped = bytearray(data)
    flipped[-20] ^= 0x40
    foreign_body = _foreign_body(snap.index)
    cases = {
        "snapshot_corrupt": bytes(flipped),
        "snapshot_truncated": data[:-100],
        "snapshot_invalid": b"this is not a snapshot at all",
        "snapshot_too_new": _reencoded(cluster, data, own, snapshot_format=2),
        "snapshot_foreign": _reencoded(cluster, data, SnapshotSealer(generate_cluster_key())),
    }
    before = {
        s.name: int(s.get("/v1/jobs").header("X-HeroCtl-Index") or 0) for s in cluster.servers
    }
    for code, bad in cases.items():
        r = restore(b, bad)
        assert_error(r, 400, code)
        if code == "snapshot_foreign":
            assert "same cluster key" in r.body["message"]
    # the header is this cluster's, but what is sealed inside opens only with another key
    inside = _reencoded(cluster, data, own, body=foreign_body, tables={"secrets": 1})
    r = restore(c, inside)
    assert_error(r, 400, "snapshot_foreign")
    assert "same cluster key" in r.body["message"]
    # management only
    put_policy(a, "jobs-writer", {"jobs": "write", "cluster": "write"})
    token = make_token(a, ["jobs-writer"])["secret_id"]
    assert as_(a, token, "GET", "/v1/operator/snapshot").status == 403
    forbidden = a.put(
        "/v1/operator/snapshot", raw=data, headers={**OCTETS, "Authorization": f"Bearer {token}"}
    )
    assert_error(forbidden, 403, "forbidden")
    assert_error(anon(a, "PUT", "/v1/operator/snapshot", raw=data, headers=dict(OCTETS)), 401)
    # A restore changes every table; the refused ones changed none (consistent reads).
    for s in cluster.servers:
        r = s.get("/v1/jobs")
        assert int(r.header("X-HeroCtl-Index") or 0) == before[s.name], s.name
        assert {j["name"] for j in r.body} == job_names(a)


def test_the_leader_takes_scheduled_backups_that_restore(cluster: Cluster) -> None:
    leader = cluster.leader()
    directory = leader.data_dir / "backups"

    def files() -> list[Path]:
        return sorted(directory.glob("heroctl-*.snap")) if directory.exists() else []

    wait_until(files, 15, message="a scheduled backup")
    assert leader.post("/v1/jobs", exec_job("scheduled")).status in (200, 201)
    index = int(leader.get("/v1/jobs").header("X-HeroCtl-Index") or 0)

    def newest_has_it() -> Path | None:
        found = files()
        return found[-1] if found and decode(found[-1].read_bytes()).index >= index else None

    newest = wait_until(newest_has_it, 15, message="a backup with the new job")
    assert len(files()) <= 2  # keep = 2
    assert newest.stat().st_mode & 0o777 == 0o600
    assert not list(directory.glob(".*.tmp"))
    assert leader.delete("/v1/jobs/scheduled").status == 200
    r = restore(leader, newest.read_bytes())
    assert r.status == 200, r.raw
    for s in cluster.servers:
        wait_until(lambda s=s: "scheduled" in job_names(s), 15, message="restored from schedule")
