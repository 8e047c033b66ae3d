"""Backups for `GET` and `PUT /v1/operator/snapshot`: taking one, and checking
an upload before anything of it is proposed.

An upload is checked whole on the server that receives it (its header,
length, sha256, format and cluster key: domain.snapshot_archive; then its
body decoded and its sealed values opened with this cluster's keys:
domain.snapshot_seals), so a snapshot that is corrupt, truncated, too new or
foreign is refused with the contract's error envelope and nothing enters the
log. Only then does raft.replica.Replica.restore propose it, in parts.
"""

from __future__ import annotations

import asyncio
import functools
import time

from aiohttp import web

from api.security.runtime import security_of
from domain.crypto import KeyMaterial
from domain.pki import CaKeys
from domain.snapshot_archive import (
    Snapshot,
    SnapshotError,
    SnapshotSealer,
    decode,
    encode_backup,
)
from domain.snapshot_seals import check_sealed
from httpkit.errors import ApiError
from raft.backup import BodyError, decode_body
from raft.formats import FormatTooNew
from raft.replica import Replica

MAX_UPLOAD = 512 * 2**20  # a backup is compressed: 10,000 jobs take ≈3 MB
_READ = 2**20


@functools.lru_cache(maxsize=4)
def _sealer(cluster_key: str) -> SnapshotSealer:
    return SnapshotSealer(cluster_key)  # HKDF once per key, not per request


@functools.lru_cache(maxsize=4)
def _ca_keys(cluster_key: str) -> CaKeys:
    return CaKeys(cluster_key)


def sealer_of(request: web.Request) -> SnapshotSealer:
    return _sealer(security_of(request).settings.cluster_key)


async def take(replica: Replica, sealer: SnapshotSealer) -> tuple[int, bytes]:
    """(index, the backup file) of this server's state."""
    backup = await replica.backup()
    data = encode_backup(sealer, backup, replica.identity.name, int(time.time() * 1000))
    return backup.index, data


async def read_upload(request: web.Request, limit: int = MAX_UPLOAD) -> bytes:
    """The request's body, streamed (the API's usual 1 MiB limit does not
    apply), at most `limit` bytes (413 beyond)."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await request.content.read(_READ):
        total += len(chunk)
        if total > limit:
            raise ApiError(413, "payload_too_large", f"a snapshot may be {limit} bytes at most")
        chunks.append(chunk)
    return b"".join(chunks)


def _check(data: bytes, sealer: SnapshotSealer, keys: KeyMaterial, ca: CaKeys) -> Snapshot:
    """Blocking (decodes the whole state): the checks of the module's docstring."""
    snapshot = decode(data, sealer)
    try:
        state = decode_body(snapshot.body)
    except BodyError as e:
        raise SnapshotError("snapshot_invalid", str(e)) from None
    except FormatTooNew as e:
        raise SnapshotError("snapshot_too_new", f"the snapshot's body is too new: {e}") from None
    if state["index"] != snapshot.index:
        raise SnapshotError("snapshot_corrupt", "the header and the body name different indexes")
    check_sealed(state["tables"], keys, ca)
    return snapshot


async def check_upload(request: web.Request, data: bytes) -> Snapshot:
    """The upload, checked (ApiError 400 with the refusal's code otherwise)."""
    security = security_of(request)
    sealer = sealer_of(request)
    ca = _ca_keys(security.settings.cluster_key)
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, _check, data, sealer, security.keys, ca)
    except SnapshotError as e:
        raise ApiError(400, e.code, e.message) from None
