"""Whether a backup's sealed values open with this cluster's key.

A backup's header carries a MAC under a key derived from the cluster key
(domain.snapshot_archive); this checks the contents too, before a restore is
proposed: the ACL system's wrapped JWT signing key, one version of every
secret's newest key, the cluster CA's key and one ingress private key are
opened with this server's keys. Any that does not open means the backup was
sealed under another cluster key: after a restore its secrets, tokens and
certificates would be unreadable, so it is refused (snapshot_foreign).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.crypto import DecryptError, KeyMaterial
from domain.pki import CaKeys, CaOpenError
from domain.snapshot_archive import FOREIGN, SnapshotError


def _secret_samples(secrets: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One version per key id in use: (secret name, version entry)."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, doc in secrets.items():
        for entry in (doc or {}).get("versions") or ():
            if isinstance(entry, dict) and entry.get("key_id") not in seen:
                seen[entry["key_id"]] = (name, entry)
    return list(seen.values())


def check_sealed(tables: Mapping[str, Mapping[str, Any]], keys: KeyMaterial, ca: CaKeys) -> int:
    """Open the backup's sealed values with this cluster's keys; how many were
    opened (0: it holds none). SnapshotError(snapshot_foreign) if one does not."""
    opened = 0
    try:
        jwt_key = (tables.get("acl_meta") or {}).get("jwt_key")
        if jwt_key is not None:
            keys.unwrap_jwt_key(jwt_key)
            opened += 1
        for name, entry in _secret_samples(tables.get("secrets") or {}):
            keys.open_secret(
                entry["key_id"], name, entry["version"], entry["nonce"], entry["ciphertext"]
            )
            opened += 1
        row = (tables.get("pki") or {}).get("ca")
        if row is not None:
            ca.open(row["key"])
            opened += 1
        for host, cert in (tables.get("certs") or {}).items():
            if isinstance(cert, dict) and isinstance(cert.get("key"), dict):
                keys.open_private_key(f"cert:{host}", cert["key"])
                opened += 1
                break
    except (DecryptError, CaOpenError, KeyError, TypeError) as e:
        raise SnapshotError("snapshot_foreign", FOREIGN) from e
    return opened
