"""FSM operations on the ingress's certificates and the ACME state.

`certs`: host -> what the leader's certificate controller obtained for it
(heroctld.controllers.certificates): the chain (public), its key sealed by
the leader before it proposed it, the fields `GET /v1/ingress/:host` shows,
and where the controller stands (`status`, `last_error`, `failures`,
`retry_at`, `renew_requested`). A new leader reads this and goes on.

`acme`: `account` -> {key (sealed), url, directory}; `challenge:<token>` ->
{host, token, key_authorization}: what every node's ingress answers at
`/.well-known/acme-challenge/<token>` (http-01); `challenge-alpn:<host>` ->
{host, cert_pem, key (sealed, label ``acme-alpn:<host>``)}: the certificate
every node's ingress shows a TLS client offering only the ALPN protocol
`acme-tls/1` for that host (tls-alpn-01). Both are replicated so that
whichever node the validator reaches answers it.
"""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.fsm_results import fail, ok
from raft.state import State

CERT_STATUSES = ("pending", "valid", "failed")
# What a `cert.put` may set (beyond host): the certificate and where its order stands.
CERT_FIELDS = (
    "status",
    "cert_pem",
    "key",
    "issuer",
    "subject",
    "hosts",
    "not_before",
    "not_after",
    "serial",
    "sha256",
    "renew_after",
    "last_error",
    "failures",
    "retry_at",
    "renew_requested",
    "obtained_at",
)
MAX_CHALLENGES = 1000
CHALLENGE_PREFIXES = ("challenge:", "challenge-alpn:")


def _sealed(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("nonce"), bytes)
        and isinstance(value.get("ciphertext"), bytes)
    )


def cert_put(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """Set fields of a host's certificate row (created on first use)."""
    host, fields = cmd.get("host"), cmd.get("fields")
    if not isinstance(host, str) or not host or not isinstance(fields, dict):
        return fail(400, "invalid_cert", "host and fields are required")
    if set(fields) - set(CERT_FIELDS):
        return fail(
            400, "invalid_cert", f"unknown fields: {sorted(set(fields) - set(CERT_FIELDS))}"
        )
    if "status" in fields and fields["status"] not in CERT_STATUSES:
        return fail(400, "invalid_cert", f"status must be one of {', '.join(CERT_STATUSES)}")
    if fields.get("key") is not None and not _sealed(fields["key"]):
        return fail(400, "invalid_cert", "a certificate key must arrive sealed (nonce, ciphertext)")
    table = state.table("certs")
    existing = table.get(host)
    doc = dict(existing) if existing else {"host": host, "status": "pending", "failures": 0}
    doc.update(fields)
    doc["modify_index"] = index
    doc["updated_at"] = cmd.get("ts", 0)
    changes.wrote("certs", host, existing)
    table[host] = doc
    state.touch("certs", index)
    return ok(cert={k: v for k, v in doc.items() if k != "key"})


def cert_renew(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """Ask the controller for a new certificate now (`POST /v1/ingress/:host/renew`)."""
    host = cmd.get("host")
    if not isinstance(host, str) or not host:
        return fail(400, "invalid_cert", "host is required")
    table = state.table("certs")
    existing = table.get(host)
    doc = dict(existing) if existing else {"host": host, "status": "pending", "failures": 0}
    doc.update(renew_requested=True, retry_at=0, modify_index=index, updated_at=cmd.get("ts", 0))
    changes.wrote("certs", host, existing)
    table[host] = doc
    state.touch("certs", index)
    return ok(host=host)


def cert_delete(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    return _drop(state, changes, "certs", cmd.get("host"), index)


def acme_account_put(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    key, url, directory = cmd.get("key"), cmd.get("url"), cmd.get("directory")
    if not _sealed(key) or not isinstance(url, str) or not isinstance(directory, str):
        return fail(400, "invalid_account", "a sealed key, its url and directory")
    table = state.table("acme")
    existing = table.get("account")
    if cmd.get("only_if_absent") and existing and existing.get("directory") == directory:
        return ok(changed=False)
    changes.wrote("acme", "account", existing)
    table["account"] = {"key": key, "url": url, "directory": directory, "modify_index": index}
    state.touch("acme", index)
    return ok(changed=True)


def _challenges_in_flight(table: dict[str, Any]) -> int:
    return sum(1 for k in table if k.startswith(CHALLENGE_PREFIXES))


def acme_challenge_put(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    host, token, key_auth = cmd.get("host"), cmd.get("token"), cmd.get("key_authorization")
    if not all(isinstance(v, str) and v for v in (host, token, key_auth)):
        return fail(400, "invalid_challenge", "host, token and key_authorization are required")
    table = state.table("acme")
    if _challenges_in_flight(table) >= MAX_CHALLENGES:
        return fail(429, "too_many_challenges", "too many ACME challenges in flight")
    row = f"challenge:{token}"
    changes.wrote("acme", row, table.get(row))
    table[row] = {
        "host": host,
        "token": token,
        "key_authorization": key_auth,
        "ts": cmd.get("ts", 0),
    }
    state.touch("acme", index)
    return ok()


def _drop(state: State, changes: Changes, table_name: str, row: Any, index: int) -> dict[str, Any]:
    """Remove a row if it is there (a retraction may be repeated)."""
    table = state.table(table_name)
    if row not in table:
        return ok(changed=False)
    changes.wrote(table_name, row, table.pop(row))
    state.touch(table_name, index)
    return ok(changed=True)


def acme_challenge_delete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    return _drop(state, changes, "acme", f"challenge:{cmd.get('token')}", index)


def acme_alpn_challenge_put(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """The tls-alpn-01 certificate of ``host`` (one per host: an order answers
    one authorization per host at a time), its key sealed by the leader."""
    host, cert_pem, key = cmd.get("host"), cmd.get("cert_pem"), cmd.get("key")
    if not isinstance(host, str) or not host or not isinstance(cert_pem, str) or not cert_pem:
        return fail(400, "invalid_challenge", "host and cert_pem are required")
    if not _sealed(key):
        return fail(400, "invalid_challenge", "the challenge key must arrive sealed")
    table = state.table("acme")
    row = f"challenge-alpn:{host}"
    if row not in table and _challenges_in_flight(table) >= MAX_CHALLENGES:
        return fail(429, "too_many_challenges", "too many ACME challenges in flight")
    changes.wrote("acme", row, table.get(row))
    table[row] = {"host": host, "cert_pem": cert_pem, "key": key, "ts": cmd.get("ts", 0)}
    state.touch("acme", index)
    return ok()


def acme_alpn_challenge_delete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    return _drop(state, changes, "acme", f"challenge-alpn:{cmd.get('host')}", index)
