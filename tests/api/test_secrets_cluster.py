"""Secrets on real servers: the API contract, encryption at rest (no plaintext in any
file or log after writes, compaction and a backup), restarts, leader change, keyring
rotation, and a data dir that is useless under another cluster key."""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from raft.state import State
from tests.api.authutil import assert_error
from tests.support.cluster import Cluster, Server, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Short compaction periods, so that forced snapshots happen within seconds.
    env = {"HEROCTL_RAFT_COMPACTION_MIN_TIME": "3"}
    c = Cluster(tmp_path_factory.mktemp("secrets"), 3, env=env).start()
    try:
        yield c
    finally:
        c.stop()


def value_of(s: Server, name: str, version: int | None = None) -> str:
    q = f"?version={version}" if version else ""
    r = s.get(f"/v1/secrets/{name}{q}")
    assert r.status == 200, (s.name, r.raw)
    return r.body["value"]


def test_contract(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    r = a.post("/v1/secrets", {"name": "db_password", "value": "s3nh@-forte"})
    assert r.status == 201 and r.body["version"] == 1 and "value" not in r.body
    assert r.body["create_time"].endswith("Z")
    r = b.post("/v1/secrets", {"name": "db_password", "value": "second"})
    assert r.status == 200 and r.body["version"] == 2
    assert value_of(c, "db_password") == "second"  # read-your-writes on any server
    assert value_of(c, "db_password", 1) == "s3nh@-forte"
    versions = c.get("/v1/secrets/db_password/versions").body
    assert [v["version"] for v in versions] == [2, 1] and versions[0]["current"]
    assert all("value" not in v for v in versions)
    r = a.post("/v1/secrets/db_password/rollback", {"version": 1})
    assert r.status == 200 and r.body["version"] == 3 and r.body["rollback_of"] == 1
    assert value_of(b, "db_password") == "s3nh@-forte"
    listing = c.get("/v1/secrets")
    assert listing.status == 200
    row = next(x for x in listing.body if x["name"] == "db_password")
    assert row["version"] == 3 and "value" not in row and "s3nh" not in listing.raw.decode()
    assert int(listing.header("X-HeroCtl-Index")) > 0
    unicode_value = 'ünïcødé ✓ \n\t"quoted"'
    assert a.post("/v1/secrets", {"name": "u.n-i_c", "value": unicode_value}).status == 201
    assert value_of(c, "u.n-i_c") == unicode_value
    assert a.post("/v1/secrets", {"name": "big", "value": "x" * 65536}).status == 201
    assert value_of(b, "big") == "x" * 65536
    assert b.delete("/v1/secrets/big").status == 200
    assert_error(c.get("/v1/secrets/big"), 404, "secret_not_found")
    assert_error(c.delete("/v1/secrets/big"), 404, "secret_not_found")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "missing_field"),
        ({"name": "x"}, 400, "missing_field"),
        ({"value": "x"}, 400, "missing_field"),
        ({"name": "bad name", "value": "x"}, 400, "invalid_name"),
        ({"name": "a/b", "value": "x"}, 400, "invalid_name"),
        ({"name": "a" * 129, "value": "x"}, 400, "invalid_name"),
        ({"name": "", "value": "x"}, 400, "invalid_name"),
        ({"name": "trailing\n", "value": "x"}, 400, "invalid_name"),
        ({"name": 5, "value": "x"}, 400, "invalid_name"),
        ({"name": "x", "value": 5}, 400, "invalid_field"),
        ({"name": "x", "value": {"a": 1}}, 400, "invalid_field"),
        ({"name": "x", "value": "x" * 65537}, 413, "value_too_large"),
    ],
)
def test_put_errors(cluster: Cluster, body: dict, status: int, code: str) -> None:
    assert_error(cluster.servers[0].post("/v1/secrets", body), status, code)


def test_read_errors(cluster: Cluster) -> None:
    s = cluster.servers[1]
    s.post("/v1/secrets", {"name": "errs", "value": "v"})
    assert_error(s.get("/v1/secrets/errs?version=0"), 400, "invalid_field")
    assert_error(s.get("/v1/secrets/errs?version=abc"), 400, "invalid_field")
    assert_error(s.get("/v1/secrets/errs?version=99"), 404, "secret_version_not_found")
    assert_error(s.get("/v1/secrets/nope"), 404, "secret_not_found")
    assert_error(s.get("/v1/secrets/nope/versions"), 404, "secret_not_found")
    assert_error(s.get("/v1/secrets/bad%20name"), 400, "invalid_name")
    assert_error(s.post("/v1/secrets/errs/rollback", {}), 400, "missing_field")
    assert_error(s.post("/v1/secrets/errs/rollback", {"version": "1"}), 400, "invalid_field")
    assert_error(
        s.post("/v1/secrets/errs/rollback", {"version": 9}), 404, "secret_version_not_found"
    )
    assert_error(s.post("/v1/secrets/nope/rollback", {"version": 1}), 404, "secret_not_found")


def test_concurrent_writers_get_distinct_versions(cluster: Cluster) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> int:
        s = cluster.servers[i % 3]
        r = s.post("/v1/secrets", {"name": "racy", "value": f"v{i}"})
        assert r.status in (200, 201), r.raw
        return r.body["version"]

    with ThreadPoolExecutor(6) as pool:
        versions = list(pool.map(put, range(18)))
    assert sorted(versions) == list(range(1, 19))


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(str(path))
    return hits


def test_no_plaintext_at_rest_or_in_logs(cluster: Cluster, tmp_path: Path) -> None:
    plain = "PLAINTEXT-" + secrets.token_hex(12)
    a, b, c = cluster.servers
    a.post("/v1/secrets", {"name": "at_rest", "value": plain})
    b.post("/v1/secrets", {"name": "at_rest", "value": plain + "-v2"})
    c.post("/v1/secrets/at_rest/rollback", {"version": 1})
    r = c.post("/v1/secrets", {"name": "at_rest_bad", "value": 7, "echo": plain})  # an error path
    assert r.status == 400 and plain not in r.raw.decode()
    for s in cluster.servers:
        assert value_of(s, "at_rest") == plain
        r = s.post("/v1/operator/snapshot")
        assert r.status == 200 and r.body["written"], r.raw
        assert (s.data_dir / "raft.snapshot").exists()
    backup = a.get("/v1/operator/backup")
    assert backup.status == 200, backup.raw
    snapshot = base64.b64decode(backup.body["snapshot"])
    assert plain.encode() not in backup.raw and plain.encode() not in snapshot
    assert State.from_bytes(snapshot).table("secrets")  # a real, loadable state
    (tmp_path / "backup.bin").write_bytes(snapshot)
    # the snapshot file is what a backup of the state is made from
    shutil.copy(a.data_dir / "raft.snapshot", tmp_path / "snapshot-copy")
    for needle in (plain.encode(), plain.encode("utf-16-le")):
        assert _files_containing(cluster.root, needle) == []
        assert _files_containing(tmp_path, needle) == []
    for s in cluster.servers:
        assert plain not in s.log()


def test_a_forced_snapshot_is_written_when_nothing_changed_since_the_last(
    cluster: Cluster,
) -> None:
    """Consistent reads add no log entries, so a second snapshot in a row has
    nothing new to compact but the operator's call still writes one."""
    s = cluster.servers[0]
    first = s.post("/v1/operator/snapshot?wait=6")
    assert first.status == 200 and first.body["written"], first.raw
    assert s.get("/v1/jobs").status == 200  # a consistent read in between: no entry
    again = s.post("/v1/operator/snapshot?wait=6")
    assert again.status == 200 and again.body["written"], again.raw
    assert again.body["applied_index"] > first.body["applied_index"]


def test_secrets_survive_leader_change_and_full_restart(cluster: Cluster) -> None:
    a = cluster.servers[0]
    for i in range(5):
        assert a.post("/v1/secrets", {"name": f"keep{i}", "value": f"kept-{i}"}).status in (
            200,
            201,
        )
    leader = cluster.leader()
    target = next(s for s in cluster.servers if s is not leader)
    assert leader.post("/v1/raft/transfer-leadership", {"to": target.name}).status == 200
    assert cluster.leader() is target
    for s in cluster.servers:
        assert value_of(s, "keep3") == "kept-3"
    for s in cluster.servers:
        s.stop()
    for s in cluster.servers:
        s.start(peers=cluster.peers)
    cluster.wait_ready()
    for s in cluster.servers:
        for i in range(5):
            assert value_of(s, f"keep{i}") == f"kept-{i}"
        assert value_of(s, "db_password", 2) == "second"


def test_rotation_reencrypts_then_full_restart(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    for i in range(10):
        b.post("/v1/secrets", {"name": f"rot{i}", "value": f"rotated-{i}"})
    before = a.get("/v1/operator/keyring").body
    r = c.post("/v1/operator/keyring/rotate")
    assert r.status == 200, r.raw
    new_primary = r.body["primary"]
    # (the leader may already have moved some versions by the time this answers)
    assert new_primary != before["primary"] and r.body["reencrypting"] >= 0

    def settled() -> bool:
        ring = a.get("/v1/operator/keyring").body
        return [k["id"] for k in ring["keys"]] == [new_primary]

    wait_until(settled, timeout=20, message="re-encryption and pruning")
    versions = a.get("/v1/secrets/rot3/versions").body
    assert {v["key_id"] for v in versions} == {new_primary}
    b.post("/v1/secrets", {"name": "after_rotation", "value": "fresh"})
    for s in cluster.servers:
        s.stop()
    for s in cluster.servers:
        s.start(peers=cluster.peers)
    cluster.wait_ready()
    for s in cluster.servers:
        assert value_of(s, "rot7") == "rotated-7"
        assert value_of(s, "after_rotation") == "fresh"
        assert value_of(s, "db_password", 1) == "s3nh@-forte"


def test_data_dir_under_another_cluster_key_cannot_decrypt(tmp_path: Path) -> None:
    (tmp_path / "orig").mkdir()
    original = Cluster(tmp_path / "orig", 1, env={"HEROCTL_RAFT_COMPACTION_MIN_TIME": "3"}).start()
    s = original.servers[0]
    try:
        assert s.post("/v1/secrets", {"name": "stolen", "value": "crown-jewels"}).status == 201
        assert s.post("/v1/operator/snapshot").status == 200
        assert s.post("/v1/secrets", {"name": "stolen2", "value": "more-jewels"}).status == 201
    finally:
        original.stop()
    thief_root = tmp_path / "thief"
    thief_root.mkdir()
    shutil.copytree(s.data_dir, thief_root / s.name)
    thief = Server(s.name, thief_root, "another-cluster-key-0123456789", raft_port=s.raft_port)
    thief.token = s.token  # even the management token does not help
    thief.start()
    try:
        wait_until(thief.ready, timeout=30, message="copied server ready")
        wait_until(
            lambda: thief.get("/v1/secrets").status == 200, timeout=15, message="state replayed"
        )
        assert {x["name"] for x in thief.get("/v1/secrets").body} == {"stolen", "stolen2"}
        for name in ("stolen", "stolen2"):
            r = thief.get(f"/v1/secrets/{name}")
            assert_error(r, 500, "decryption_failed")
            assert b"jewels" not in r.raw
        r = thief.post("/v1/auth/login", {"acl_token": s.token})
        assert_error(r, 500, "signing_key_unavailable")
    finally:
        thief.stop()
