"""FSM: what a worker-only node registers for its agent API (the URL and its
node secret, which must arrive sealed), and the node view without it."""

from __future__ import annotations

from typing import Any

from raft.fsm import apply_batch
from raft.fsm_nodes import public_node
from raft.state import State

SEALED = {"nonce": b"\x00" * 12, "ciphertext": b"\x01" * 48}


def register(state: State, index: int, **node: Any) -> dict[str, Any]:
    doc = {"id": "n1", "name": "worker-1", "resources": {"cpu": 1000, "memory": 512}, **node}
    return apply_batch(state, [{"op": "node.register", "ts": index, "node": doc}], index)[0]


def test_agent_api_and_sealed_secret_are_kept_and_hidden_from_answers() -> None:
    state = State()
    r = register(state, 2, agent_api="http://10.0.0.21:7072", agent_secret=SEALED)
    assert r["ok"], r
    doc = state.table("nodes")["n1"]
    assert doc["agent_api"] == "http://10.0.0.21:7072" and doc["agent_secret"] == SEALED
    shown = public_node(doc)
    assert "agent_secret" not in shown and shown["agent_api"] == "http://10.0.0.21:7072"
    # a drain keeps them; a registration without an API clears them
    apply_batch(
        state, [{"op": "node.drain", "ts": 3, "id": "n1", "enable": True, "deadline_seconds": 5}], 3
    )
    assert state.table("nodes")["n1"]["agent_secret"] == SEALED
    assert register(state, 4, agent_api=None, agent_secret=None)["ok"]
    doc = state.table("nodes")["n1"]
    assert doc["agent_api"] is None and doc["agent_secret"] is None


def test_a_plaintext_secret_is_refused() -> None:
    state = State()
    for bad in ["0123456789abcdef" * 4, {"nonce": "x", "ciphertext": "y"}, {"ciphertext": b"x"}]:
        r = register(state, 2, agent_api="http://h:1", agent_secret=bad)
        assert not r["ok"] and r["error"] == "invalid_node", r
    assert "n1" not in state.table("nodes")
