"""FSM unit tests: determinism, every op, idempotency, totality."""

from __future__ import annotations

import copy
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from raft.changes import Changes
from raft.commands import decode_batch, encode_batch, encode_command
from raft.fsm import apply_batch
from raft.fsm_jobs import MAX_VERSIONS, job_versions
from raft.operations import OPERATIONS
from raft.state import State


def cmd(op: str, rid: str | None = None, **fields: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"op": op, "ts": 1000, **fields}
    if rid:
        c["rid"] = rid
    return c


def run(log: list[list[dict[str, Any]]]) -> tuple[State, list[list[dict[str, Any]]]]:
    state = State()
    results = []
    for i, batch in enumerate(log, start=2):
        entry = encode_batch([encode_command(c) for c in batch])
        results.append(apply_batch(state, decode_batch(entry), i))
    return state, results


SAMPLE_LOG = [
    [cmd("server.register", name="s1", raft_address="127.0.0.1:1", api_address="http://a")],
    [cmd("job.upsert", rid="r1", job={"name": "web", "image": "x"})],
    [
        cmd("job.upsert", job={"name": "web", "image": "y"}, cas=3),
        cmd("job.upsert", job={"name": "db"}),
    ],
    [cmd("job.upsert", job={"name": "web"}, cas=3)],  # stale CAS: conflict
    [cmd("job.delete", name="db"), cmd("noop")],
    [cmd("job.upsert", rid="r1", job={"name": "web", "image": "ignored"})],  # retried rid
    [],  # a barrier entry
]


def test_same_log_twice_gives_identical_state() -> None:
    a, ra = run(SAMPLE_LOG)
    b, rb = run(copy.deepcopy(SAMPLE_LOG))
    assert a.capture() == b.capture()
    assert ra == rb
    assert a.to_bytes() == b.to_bytes()


def test_job_upsert_versions_and_cas() -> None:
    state, results = run(SAMPLE_LOG)
    created, updated, conflict = results[1][0], results[2][0], results[3][0]
    assert created["ok"] and created["created"] and created["job"]["version"] == 0
    assert updated["ok"] and not updated["created"] and updated["job"]["version"] == 1
    assert updated["job"]["job_modify_index"] == 4 and updated["job"]["create_index"] == 3
    assert conflict == {**conflict, "ok": False, "status": 409, "error": "conflict"}
    web = state.table("jobs")["web"]
    assert web["image"] == "y" and web["version"] == 1
    assert [v["version"] for v in job_versions(state, "web")] == [1, 0]
    assert state.table_index["jobs"] == 6


def test_cas_zero_means_must_not_exist() -> None:
    _, results = run(
        [
            [cmd("job.upsert", job={"name": "a"}, cas=0)],
            [cmd("job.upsert", job={"name": "a"}, cas=0)],
        ]
    )
    assert results[0][0]["ok"] and results[1][0]["status"] == 409


def test_retried_request_applies_once() -> None:
    state, results = run(SAMPLE_LOG)
    assert results[5][0]["job"]["image"] == "x"  # the remembered first answer
    assert state.table("jobs")["web"]["image"] == "y"


def test_delete_and_unknown_job() -> None:
    state, results = run(SAMPLE_LOG + [[cmd("job.delete", name="nope")]])
    assert results[4][0]["ok"] and "db" not in state.table("jobs")
    assert results[-1][0]["status"] == 404 and results[-1][0]["error"] == "job_not_found"


def test_versions_are_bounded() -> None:
    log = [[cmd("job.upsert", job={"name": "a", "n": i})] for i in range(MAX_VERSIONS + 5)]
    state, _ = run(log)
    versions = job_versions(state, "a")
    assert len(versions) == MAX_VERSIONS
    assert versions[0]["version"] == MAX_VERSIONS + 4


def test_servers_register_replace_and_forget() -> None:
    state, results = run(
        [
            [cmd("server.register", name="s1", raft_address="h:1", api_address="http://h:2")],
            [cmd("server.register", name="s1b", raft_address="h:1", api_address="http://h:2")],
            [cmd("server.register", name="bad", raft_address="", api_address="x")],
            [cmd("server.forget", name="s1b")],
            [cmd("server.forget", name="s1b")],
        ]
    )
    assert results[1][0]["ok"] and results[2][0]["status"] == 400
    assert results[3][0]["ok"] and results[4][0]["status"] == 404
    assert state.table("servers") == {}


def test_unknown_op_and_undecodable_command() -> None:
    state = State()
    bad_item = msgpack.packb([1, [b"\xc1garbage", encode_command(cmd("nope"))]])
    results = apply_batch(state, decode_batch(bad_item), 2)
    assert [r["error"] for r in results] == ["invalid_command", "unknown_op"]
    assert decode_batch(b"not msgpack at all") == []
    assert state.index == 2


def test_a_bug_in_an_operation_is_an_answer_not_an_exception(monkeypatch: Any) -> None:
    def explode(state: State, c: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setitem(OPERATIONS, "test.explode", explode)
    results = apply_batch(State(), [cmd("test.explode"), {"op": ["not", "a", "name"]}], 2)
    assert results[0]["status"] == 500 and results[0]["error"] == "internal"
    assert results[1]["error"] == "unknown_op"


def test_snapshot_round_trip() -> None:
    state, _ = run(SAMPLE_LOG)
    again = State.from_bytes(state.to_bytes())
    assert again.capture() == state.capture()


job_names = st.sampled_from(["a", "b", "c"])
commands = st.one_of(
    st.builds(
        lambda n, c: cmd("job.upsert", job={"name": n}, cas=c),
        job_names,
        st.one_of(st.none(), st.integers(0, 30)),
    ),
    st.builds(lambda n: cmd("job.delete", name=n), job_names),
    st.builds(lambda r: cmd("noop", rid=r), st.sampled_from(["x", "y", None])),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(commands, max_size=4), max_size=25))
def test_any_log_is_deterministic_and_total(log: list[list[dict[str, Any]]]) -> None:
    a, ra = run(log)
    b, rb = run(copy.deepcopy(log))
    assert a.to_bytes() == b.to_bytes() and ra == rb
    for name, doc in a.table("jobs").items():
        assert doc["name"] == name and doc["job_modify_index"] <= a.index
