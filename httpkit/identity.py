"""Who is calling: the identity a request authenticated as, and where it
came from. Shared by the server's API and a worker-only node's agent API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from domain.policy import Permissions
from httpkit.errors import ApiError

IDENTITY = "heroctl.identity"  # request key: the authenticated Identity


@dataclass(frozen=True)
class Identity:
    subject: str  # "token:<accessor>", "user:<username>", "server:<name>" or "node:<id>"
    kind: str  # token | user | server | node
    name: str  # accessor id, username, server name or node id
    type: str  # management | client | service
    policies: tuple[str, ...]
    roles: tuple[str, ...]
    permissions: Permissions
    via: str  # "acl_token", "jwt" or "server"
    session_id: str | None = None
    jti: str | None = None
    expires_at: float | None = None  # unix seconds, for JWTs and expiring tokens
    # The only routes ((method, route template)) this identity may call, whatever
    # its permissions; None: its permissions decide (domain.policy.NODE_ROUTES).
    scope: frozenset[tuple[str, str]] | None = None

    @classmethod
    def server(
        cls,
        name: str,
        via: str,
        expires_at: float | None = None,
        scope: frozenset[tuple[str, str]] | None = None,
    ) -> Identity:
        """A server of this cluster (it proved it holds key material); with
        `scope`, a server that may only do that (a joining server)."""
        return cls(
            subject=f"server:{name}",
            kind="server",
            name=name,
            type="management",
            policies=(),
            roles=(),
            permissions=Permissions(management=scope is None),
            via=via,
            expires_at=expires_at,
            scope=scope,
        )

    @classmethod
    def node(cls, node_id: str, expires_at: float, scope: frozenset[tuple[str, str]]) -> Identity:
        """A worker-only node (it proved it holds its node secret): it may call
        the agent routes (`scope`), for itself only (the handlers check)."""
        return cls(
            subject=f"node:{node_id}",
            kind="node",
            name=node_id,
            type="client",
            policies=(),
            roles=(),
            permissions=Permissions(),
            via="node",
            expires_at=expires_at,
            scope=scope,
        )

    @property
    def management(self) -> bool:
        return self.permissions.management

    @property
    def rate_key(self) -> str:
        return self.subject

    @property
    def rate_class(self) -> str:
        if self.kind in ("server", "node"):
            return "server"
        return {"management": "management", "service": "service"}.get(self.type, "default")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subject": self.subject,
            "kind": self.kind,
            "type": self.type,
            "policies": list(self.policies),
            "roles": list(self.roles),
            "via": self.via,
            "management": self.management,
        }
        if self.kind == "token":
            out["accessor_id"] = self.name
        elif self.kind == "user":
            out["username"] = self.name
        elif self.kind == "node":
            out["node_id"] = self.name
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out


def identity_of(request: web.Request) -> Identity:
    ident = request.get(IDENTITY)
    if ident is None:
        raise ApiError(401, "missing_token", "this endpoint needs a token")
    return ident


def bearer(request: web.Request) -> str | None:
    """The credential from `Authorization: Bearer <X>`, or None without the header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise ApiError(401, "invalid_token", "the Authorization header must be 'Bearer <token>'")
    return value


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"
