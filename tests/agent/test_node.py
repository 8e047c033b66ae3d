"""This node's identity files and registration: the node secret (created
once, mode 0600, never shown) and the agent API the registration carries."""

from __future__ import annotations

import stat
from pathlib import Path

from agent.node import NodeIdentity, load_node_id, load_node_secret


def identity(**extra: object) -> NodeIdentity:
    return NodeIdentity(
        id="n" * 32,
        name="worker-1",
        address="10.0.0.21",
        cpu=1000,
        memory=512,
        disk=100,
        drivers=("exec",),
        port_range=(20000, 20100),
        labels={},
        attributes={},
        **extra,  # type: ignore[arg-type]
    )


def test_node_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    secret = load_node_secret(tmp_path)
    path = tmp_path / "agent" / "node-secret"
    assert len(secret) == 64 and path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_node_secret(tmp_path) == secret  # the same after a restart
    assert load_node_id(tmp_path) != secret
    path.chmod(0o644)  # copied with a loose mode: tightened, kept
    assert load_node_secret(tmp_path) == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("torn")  # unusable: replaced by a new one
    fresh = load_node_secret(tmp_path)
    assert fresh != secret and len(fresh) == 64
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".node-secret")]


def test_register_body_carries_the_agent_api_only_when_served() -> None:
    assert "agent_api" not in identity().register_body()
    body = identity(agent_api="http://10.0.0.21:7072", agent_secret="s" * 64).register_body()
    assert body["agent_api"] == "http://10.0.0.21:7072" and body["agent_secret"] == "s" * 64
    assert "s" * 64 not in repr(identity(agent_api="http://x:1", agent_secret="s" * 64))
