"""FSM operation on the cluster's certificate authority (table ``pki``).

One row, ``ca``: ``{cert, key: {nonce, ciphertext}, fingerprint, create_index,
create_time}``. The certificate is public; the private key arrives sealed
(domain.pki.CaKeys: AES-256-GCM under a key derived from the cluster key), so
the log and every snapshot hold only ciphertext. Create-only, first wins: two
leaders in quick succession may both propose a CA, the second gets the first
back (``created: false``) and every server signs with the same one.
"""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.commands import timestamp
from raft.fsm_results import fail, ok
from raft.state import State

CA_ROW = "ca"
MAX_PEM = 16 * 1024
MAX_SEALED_KEY = 4 * 1024


def ca(state: State) -> dict[str, Any] | None:
    return state.table("pki").get(CA_ROW)


def ca_create(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    cert, key, fp = cmd.get("cert"), cmd.get("key"), cmd.get("fingerprint")
    if not (isinstance(cert, str) and cert.startswith("-----BEGIN CERTIFICATE-----")):
        return fail(400, "invalid_command", "cert must be a PEM certificate")
    if len(cert) > MAX_PEM or not (isinstance(fp, str) and fp.startswith("sha256:")):
        return fail(400, "invalid_command", "cert too large, or no sha256 fingerprint")
    if not isinstance(key, dict):
        return fail(400, "invalid_command", "key must be the sealed CA key {nonce, ciphertext}")
    nonce, ciphertext = key.get("nonce"), key.get("ciphertext")
    if not (isinstance(nonce, bytes) and len(nonce) == 12 and isinstance(ciphertext, bytes)):
        return fail(400, "invalid_command", "the sealed key needs a 12-byte nonce and ciphertext")
    if len(ciphertext) > MAX_SEALED_KEY:
        return fail(400, "invalid_command", "the sealed key is too large")
    existing = ca(state)
    if existing is not None:
        return ok(created=False, fingerprint=existing["fingerprint"])
    state.table("pki")[CA_ROW] = {
        "cert": cert,
        "key": {"nonce": nonce, "ciphertext": ciphertext},
        "fingerprint": fp,
        "create_index": index,
        "create_time": timestamp(cmd),
    }
    state.touch("pki", index)
    return ok(created=True, fingerprint=fp)
