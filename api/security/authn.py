"""Credentials -> identities, from the replicated ACL tables.

`Authorization: Bearer <X>` where X is one of:
- an ACL token secret `ht_...` (looked up by its sha256),
- a JWT from `/v1/auth/login` (HS256 with the cluster's signing key, valid
  only while its session exists and names its `jti`: logout, refresh, a
  deleted user or token end it on every server at the same raft index),
- a server credential `hs_...` (an HMAC made with a key derived from the
  cluster key, for this server by name: servers relaying to each other, a
  server's own agent; or for any server, good for joining only),
- a node credential `nn_...` (an HMAC made with the node secret a
  worker-only node registered: that node's agent, for its own routes only).

Resolution reads local state. Results are cached per credential string and
the cache is keyed by the ACL tables' indexes, so any ACL change (a deleted
token, a new policy) takes effect at once. A credential that is unknown here
may be newer than this server's state: the caller retries once after a
consistent-read barrier before answering 401.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from api.security import jwt_tokens
from domain.crypto import JOIN_AUDIENCE, SERVER_TOKEN_PREFIX, DecryptError, KeyMaterial
from domain.node_credentials import (
    NODE_CREDENTIAL_PREFIX,
    NodeSecretError,
    NodeSecrets,
    parse_node_credential,
    verify_node_credential,
)
from domain.policy import JOIN_ROUTES, NODE_ROUTES, Permissions
from domain.tokens import hash_secret, is_token_secret
from httpkit.identity import Identity
from raft.replica import StateView
from raft.views import Reading

_CACHE_MAX = 8192


class AuthError(Exception):
    """No valid identity: the request gets 401 with this code and message."""

    def __init__(self, code: str, message: str, retry_with_barrier: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_with_barrier = retry_with_barrier


class KeyUnavailable(Exception):
    """The JWT signing key is missing or does not decrypt (not bootstrapped, wrong key)."""


# Every table an identity depends on: the latest change among them is the
# cache key (table indexes only grow, so any change moves it).
ACL_TABLES = ("acl_meta", "acl_policies", "acl_roles", "acl_tokens", "acl_users", "acl_sessions")


def _permissions(view: StateView, policies: list[str], roles: list[str], management: bool):
    names = set(policies)
    role_rows = view.acl_roles
    for role in roles:
        row = role_rows.get(role)
        if row is not None:
            names.update(row["policies"])
    rows = view.acl_policies
    rule_sets = [rows[n]["rules"] for n in sorted(names) if n in rows]
    return Permissions.compile(rule_sets, management=management)


def identity_for_subject(view: StateView, subject: str, now_ms: int) -> Identity | None:
    """The live identity behind `token:<accessor>` or `user:<name>` (None: gone or expired)."""
    kind, _, name = subject.partition(":")
    table = view.acl_tokens if kind == "token" else view.acl_users if kind == "user" else None
    row = table.get(name) if table is not None else None
    if row is None:
        return None
    expires = row["expires_at"] if kind == "token" else None
    if expires is not None and expires <= now_ms:
        return None
    return Identity(
        subject=subject,
        kind=kind,
        name=name,
        type=row["type"],
        policies=tuple(row["policies"]),
        roles=tuple(row["roles"]),
        permissions=_permissions(view, row["policies"], row["roles"], row["type"] == "management"),
        via="acl_token" if kind == "token" else "jwt",
        expires_at=None if expires is None else expires / 1000,
    )


class Authenticator:
    def __init__(
        self,
        reading: Reading,
        keys: KeyMaterial,
        clock: Callable[[], float] = time.time,
        *,
        server_name: str = "",
        node_secrets: NodeSecrets | None = None,
    ) -> None:
        """`reading`: `replica.read()`, the typed reads of the ACL tables;
        `server_name`: whom server credentials must be made for."""
        self.reading = reading
        self.keys = keys
        self.clock = clock
        self.server_name = server_name
        self.node_secrets = node_secrets
        self._cache: dict[str, tuple[int, Identity]] = {}
        self._jwt_key: tuple[int, bytes] | None = None

    # --- the signing key -------------------------------------------------------
    def jwt_key(self) -> bytes:
        with self.reading as view:
            idx = view.acl_meta.index
            if self._jwt_key is not None and self._jwt_key[0] == idx:
                return self._jwt_key[1]
            wrapped = view.acl_meta.get("jwt_key")
        if wrapped is None:
            raise KeyUnavailable("the cluster is not bootstrapped: POST /v1/acl/bootstrap first")
        try:
            key = self.keys.unwrap_jwt_key(wrapped)
        except DecryptError as e:
            raise KeyUnavailable(str(e)) from None
        self._jwt_key = (idx, key)
        return key

    def bootstrapped(self) -> bool:
        with self.reading as view:
            return "bootstrap" in view.acl_meta

    # --- resolution --------------------------------------------------------------
    def resolve(self, credential: str) -> Identity:
        """The identity for a credential, from local state; AuthError if none."""
        now = self.clock()
        if credential.startswith(NODE_CREDENTIAL_PREFIX):
            return self._resolve_node(credential, now)  # not cached: the nodes table decides
        with self.reading as view:
            version = view.index_of(*ACL_TABLES)
            hit = self._cache.get(credential)
            if hit is not None and hit[0] == version:
                ident = hit[1]
                if ident.expires_at is None or ident.expires_at > now:
                    return ident
                del self._cache[credential]  # expired: resolve again (and refuse)
            ident = self._resolve(view, credential, now)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[credential] = (version, ident)
        return ident

    def _resolve(self, view: StateView, credential: str, now: float) -> Identity:
        now_ms = int(now * 1000)
        if credential.startswith("ht_"):
            if not is_token_secret(credential):
                raise AuthError("invalid_token", "malformed ACL token")
            accessor = view.acl_token_hashes.get(hash_secret(credential))
            ident = identity_for_subject(view, f"token:{accessor}", now_ms) if accessor else None
            if ident is None:
                raise AuthError("invalid_token", "unknown or expired ACL token", True)
            return ident
        if credential.startswith(SERVER_TOKEN_PREFIX):
            found = self.keys.verify_server_token(
                credential, (self.server_name, JOIN_AUDIENCE), now
            )
            if found is None:
                raise AuthError(
                    "invalid_token",
                    "invalid or stale server credential, or one made for another server",
                )
            name, audience = found
            # re-verified (fresh timestamp) at least every minute
            if audience == JOIN_AUDIENCE:
                return Identity.server(name, via="join", expires_at=now + 60, scope=JOIN_ROUTES)
            return Identity.server(name, via="server", expires_at=now + 60)
        if jwt_tokens.looks_like_jwt(credential):
            return self._resolve_jwt(view, credential, now, now_ms)
        raise AuthError("invalid_token", "the bearer value is not a token this API knows")

    def _resolve_node(self, credential: str, now: float) -> Identity:
        parsed = parse_node_credential(credential)
        if parsed is None or self.node_secrets is None:
            raise AuthError("invalid_token", "malformed node credential")
        node_id, ts, mac = parsed
        with self.reading as view:
            node = view.nodes.get(node_id)
        sealed = node.get("agent_secret") if node else None
        if sealed is None:
            raise AuthError(
                "invalid_token", f"node '{node_id}' has no node secret registered", True
            )
        try:
            secret = self.node_secrets.open(node_id, sealed)
        except NodeSecretError as e:
            raise AuthError("invalid_token", str(e)) from None
        why = verify_node_credential(secret, node_id, ts, mac, now)
        if why:
            raise AuthError("invalid_token", why)
        return Identity.node(node_id, expires_at=now + 60, scope=NODE_ROUTES)

    def _resolve_jwt(self, view: StateView, credential: str, now: float, now_ms: int) -> Identity:
        try:
            key = self.jwt_key()
        except KeyUnavailable as e:
            raise AuthError("invalid_token", f"cannot verify tokens: {e}", True) from None
        try:
            claims = jwt_tokens.verify(key, credential, now)
        except jwt_tokens.InvalidJwt as e:
            raise AuthError("invalid_token", str(e)) from None
        session = view.acl_sessions.get(claims["sid"])
        if session is None or session["jti"] != claims["jti"]:
            raise AuthError("invalid_token", "the token was revoked or replaced", True)
        if session["subject"] != claims["sub"]:
            raise AuthError("invalid_token", "the token does not match its session")
        ident = identity_for_subject(view, claims["sub"], now_ms)
        if ident is None:
            raise AuthError("invalid_token", "the token's identity no longer exists", True)
        expires = float(claims["exp"])
        if ident.expires_at is not None:
            expires = min(expires, ident.expires_at)
        return Identity(
            subject=ident.subject,
            kind=ident.kind,
            name=ident.name,
            type=ident.type,
            policies=ident.policies,
            roles=ident.roles,
            permissions=ident.permissions,
            via="jwt",
            session_id=claims["sid"],
            jti=claims["jti"],
            expires_at=expires,
        )
