"""The agent's settings: the agent API a worker advertises (and none for an
embedded agent)."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig


def test_advertised_agent_api() -> None:
    def config(**kw: object) -> AgentConfig:
        return AgentConfig(["127.0.0.1:7070"], None, "w", "/tmp/x", **kw)  # type: ignore[arg-type]

    assert config().api_url is None  # the embedded agent: none
    assert config(host_ip="10.0.0.21", api_port=7072).api_url == "http://10.0.0.21:7072"
    assert config(host_ip="10.0.0.21", api_port=7072, api_bind="10.0.0.99").api_url == (
        "http://10.0.0.99:7072"
    )
    wildcard = config(host_ip="0.0.0.0", address="10.0.0.21", api_port=7072, api_bind="0.0.0.0")
    assert wildcard.api_url == "http://10.0.0.21:7072"
    assert config(host_ip="fd00::21", api_port=7072).api_url == "http://[fd00::21]:7072"
    with pytest.raises(ValueError):
        config(api_port=70000)
