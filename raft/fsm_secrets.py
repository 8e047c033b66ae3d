"""FSM operations on secrets and the keyring that encrypts them.

The FSM only ever sees ciphertext: the server that received a value sealed it
(AES-256-GCM, key derived from the cluster key and `key_id`, AAD = name and
version) before proposing the command. Versions are check-and-set (a put
names the version it creates), so two servers sealing concurrently cannot
both claim one version: the loser re-reads and seals again.

Keyring: `{"primary": key_id, "keys": {key_id: {...}}}` in table `keyring`
under the row `keyring`. The first put installs its key id as primary;
`keyring.rotate` adds a new primary; `secret.reencrypt` moves one version to
another key (only if it still uses the key the re-encrypter read);
`keyring.prune` drops every key that is neither primary nor used.
"""

from __future__ import annotations

import re
from typing import Any

from raft.changes import Changes
from raft.commands import timestamp
from raft.fsm_results import delete_named, fail, ok
from raft.state import State

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_VERSIONS = 20  # per secret; older versions are dropped
MAX_CIPHERTEXT = 64 * 1024 + 16  # 64 KiB of plaintext plus the GCM tag
KEYRING_ROW = "keyring"


def keyring(state: State) -> dict[str, Any] | None:
    return state.table("keyring").get(KEYRING_ROW)


def _sealed(cmd: dict[str, Any]) -> dict[str, Any] | None:
    kid, nonce, ct = cmd.get("key_id"), cmd.get("nonce"), cmd.get("ciphertext")
    if not (isinstance(kid, str) and kid and isinstance(nonce, bytes) and isinstance(ct, bytes)):
        return None
    if len(nonce) != 12 or len(ct) > MAX_CIPHERTEXT:
        return None
    return {"key_id": kid, "nonce": nonce, "ciphertext": ct}


def _new_keyring(kid: str, ts: int, index: int) -> dict[str, Any]:
    return {"primary": kid, "keys": {kid: {"id": kid, "create_time": ts, "create_index": index}}}


def secret_put(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    name, version = cmd.get("name"), cmd.get("version")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return fail(400, "invalid_name", "secret names are 1-128 of [A-Za-z0-9_.-]")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return fail(400, "invalid_command", "version must be a positive integer")
    sealed = _sealed(cmd)
    if sealed is None:
        return fail(400, "invalid_command", "a secret needs key_id, a 12-byte nonce and ciphertext")
    ts = timestamp(cmd)
    ring = keyring(state)
    if ring is None:
        state.table("keyring")[KEYRING_ROW] = _new_keyring(sealed["key_id"], ts, index)
        state.touch("keyring", index)
    elif sealed["key_id"] not in ring["keys"]:
        return fail(409, "unknown_key", f"key '{sealed['key_id']}' is not in the keyring")
    table = state.table("secrets")
    existing = table.get(name)
    current = existing["version"] if existing else 0
    if version != current + 1:
        return fail(
            409, "version_conflict", f"secret '{name}' is at version {current}, not {version - 1}"
        )
    entry = {"version": version, "create_time": ts, "create_index": index, **sealed}
    if isinstance(cmd.get("rollback_of"), int):
        entry["rollback_of"] = cmd["rollback_of"]
    versions = [*(existing["versions"] if existing else ()), entry][-MAX_VERSIONS:]
    doc = {
        "name": name,
        "version": version,
        "create_time": existing["create_time"] if existing else ts,
        "modify_time": ts,
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
        "versions": versions,
    }
    changes.wrote("secrets", name, existing)
    table[name] = doc
    state.touch("secrets", index)
    return ok(secret=describe(doc), created=existing is None)


def secret_delete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    name = cmd.get("name")
    existing = state.table("secrets").get(name) if isinstance(name, str) else None
    if (refused := delete_named(state, "secrets", name, "secret", index)) is not None:
        return refused
    changes.wrote("secrets", name, existing)
    return ok(name=name)


def secret_reencrypt(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Move one version to another key; a no-op if it changed meanwhile."""
    sealed = _sealed(cmd)
    ring = keyring(state)
    if sealed is None or ring is None or sealed["key_id"] not in ring["keys"]:
        return fail(400, "invalid_command", "re-encryption needs a sealed value under a known key")
    table = state.table("secrets")
    name = cmd.get("name")
    doc = table.get(name) if isinstance(name, str) else None
    if doc is None:
        return ok(changed=False)
    versions = list(doc["versions"])
    for i, entry in enumerate(versions):
        if entry["version"] == cmd.get("version") and entry["key_id"] == cmd.get("old_key_id"):
            versions[i] = {**entry, **sealed}
            changes.wrote("secrets", doc["name"], doc)
            table[doc["name"]] = {**doc, "versions": versions}
            state.touch("secrets", index)
            return ok(changed=True)
    return ok(changed=False)


def keyring_rotate(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    kid, ts = cmd.get("key_id"), timestamp(cmd)
    if not isinstance(kid, str) or not kid:
        return fail(400, "invalid_command", "rotate needs a key_id")
    ring = keyring(state)
    if ring is None:
        new = _new_keyring(kid, ts, index)
    elif kid in ring["keys"]:
        return fail(409, "key_exists", f"key '{kid}' is already in the keyring")
    else:
        keys = dict(ring["keys"])
        keys[kid] = {"id": kid, "create_time": ts, "create_index": index}
        new = {"primary": kid, "keys": keys}
    state.table("keyring")[KEYRING_ROW] = new
    state.touch("keyring", index)
    return ok(keyring=new)


def keys_in_use(state: State) -> dict[str, int]:
    """key id -> how many stored versions it encrypts."""
    used: dict[str, int] = {}
    for doc in state.table("secrets").values():
        for entry in doc["versions"]:
            used[entry["key_id"]] = used.get(entry["key_id"], 0) + 1
    return used


def keyring_prune(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    ring = keyring(state)
    if ring is None:
        return ok(dropped=[])
    used = keys_in_use(state)
    keep = {k: v for k, v in ring["keys"].items() if k == ring["primary"] or used.get(k)}
    dropped = sorted(set(ring["keys"]) - set(keep))
    if dropped:
        state.table("keyring")[KEYRING_ROW] = {"primary": ring["primary"], "keys": keep}
        state.touch("keyring", index)
    return ok(dropped=dropped)


def describe(doc: dict[str, Any]) -> dict[str, Any]:
    """A secret's metadata: never its value, nor its ciphertext."""
    return {
        "name": doc["name"],
        "version": doc["version"],
        "create_time": doc["create_time"],
        "modify_time": doc["modify_time"],
        "create_index": doc["create_index"],
        "modify_index": doc["modify_index"],
    }


def version_entry(doc: dict[str, Any], version: int) -> dict[str, Any] | None:
    for entry in doc["versions"]:
        if entry["version"] == version:
            return entry
    return None
