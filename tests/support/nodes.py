"""Nodes registered through the API by a test (no agent behind them), the
way a worker-only agent does it: enrolled with a token allowed `nodes:
write` and a node secret, then speaking for itself with the node credential
that secret makes (domain.node_credentials)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from domain.node_credentials import new_node_secret, node_credential
from tests.support.cluster import Server
from tests.support.http import Reply


@dataclass
class HandNode:
    server: Server
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    name: str = field(default_factory=lambda: f"hand-{uuid.uuid4().hex[:6]}")
    secret: str = field(default_factory=new_node_secret, repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {node_credential(self.secret, self.id)}"}

    def register(self, **fields: Any) -> Reply:
        """Enroll with the server's (management) token, or `headers=` another's."""
        headers = fields.pop("headers", {})
        body = {"id": self.id, "name": self.name, "agent_secret": self.secret, **fields}
        return self.server.post("/v1/nodes/register", body, headers=headers)

    def post(self, path: str, body: Any = None) -> Reply:
        return self.server.post(path, body, headers=self.headers())

    def get(self, path: str) -> Reply:
        return self.server.get(path, headers=self.headers())

    def heartbeat(self, usage: dict[str, Any] | None = None) -> Reply:
        return self.post(f"/v1/nodes/{self.id}/heartbeat", {"usage": usage} if usage else {})

    def report(self, updates: list[dict[str, Any]]) -> Reply:
        return self.post("/v1/allocations/status", {"node": self.id, "updates": updates})


def hand_node(server: Server, **fields: Any) -> HandNode:
    """A node registered and ready for placements (one heartbeat sent)."""
    node = HandNode(server)
    r = node.register(**fields)
    assert r.status == 200, r.body
    assert node.heartbeat().status == 200
    return node
