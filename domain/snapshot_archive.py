"""The backup file: a header, then the state (`heroctl operator snapshot`).

```
"HCTLSNAP"                      8 bytes, the magic
header length                   4 bytes, big-endian
header                          msgpack map:
    format       the snapshot format of the body (raft.formats.SNAPSHOT_FORMAT)
    index        the state index the backup holds
    cluster_id   derived from the cluster key (the same key, the same id)
    created      when it was taken (ms since the epoch)
    server       the server that took it
    size         the body's length
    sha256       the body's sha256 (hex)
    compression  "zlib"
    tables       rows per table
    mac          HMAC-SHA256 of every field above under a key derived from the
                 cluster key: proof that a cluster with this key made it
body                            raft.backup: the tables, msgpack, zlib
```

Reading one checks, in order, and refuses with a `SnapshotError` whose code
says which: the magic (`snapshot_invalid`), a header that fits
(`snapshot_truncated`) and decodes (`snapshot_corrupt`), a format this code
reads (`snapshot_too_new`), a body of the announced size
(`snapshot_truncated`, or `snapshot_corrupt` with bytes after it), its sha256
(`snapshot_corrupt`), and, when the cluster key is known, the cluster id and
the MAC (`snapshot_foreign`: the secrets, keys and tokens inside are sealed
with keys derived from the cluster key, so restoring needs the same key).
Without the key (`heroctl operator snapshot inspect` on a workstation) only
the first checks run. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack

from raft.backup import Backup
from raft.formats import SNAPSHOT_FORMAT
from raft.keys import derive_key

MAGIC = b"HCTLSNAP"
_LENGTH = struct.Struct(">I")
PREFIX = len(MAGIC) + _LENGTH.size
MAX_HEADER = 2**20
COMPRESSION = "zlib"
FOREIGN = (
    "the snapshot was taken by a cluster with another cluster key: its secrets, keys and "
    "tokens are sealed with keys derived from that key, so restoring it needs the same "
    "cluster key (start the servers with the key of the cluster that took it)"
)
_SIGNED = ("format", "index", "cluster_id", "created", "server", "size", "sha256", "compression")


class SnapshotError(ValueError):
    """A snapshot that cannot be read or restored here; `code` names why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def cluster_id(cluster_key: str) -> str:
    """The id a backup names its cluster by: derived from the cluster key, so
    a cluster rebuilt with the same key has the same id (it reveals nothing of
    the key)."""
    return "hc-" + derive_key(cluster_key, "cluster-id", 8).hex()


class SnapshotSealer:
    """What the servers need of the cluster key for backups: the cluster id and the MAC."""

    def __init__(self, cluster_key: str) -> None:
        self.cluster_id = cluster_id(cluster_key)
        self._mac_key = derive_key(cluster_key, "snapshot-mac")

    def mac(self, header: dict[str, Any]) -> str:
        tables = header.get("tables")
        counts = sorted(tables.items()) if isinstance(tables, dict) else tables
        signed = msgpack.packb([*(header.get(k) for k in _SIGNED), counts], use_bin_type=True)
        return hmac.new(self._mac_key, signed, hashlib.sha256).hexdigest()

    def mac_ok(self, header: dict[str, Any]) -> bool:
        mac = header.get("mac")
        try:
            return isinstance(mac, str) and hmac.compare_digest(self.mac(header), mac)
        except (TypeError, ValueError):  # a header of values msgpack or sorting refuse
            return False


@dataclass(frozen=True)
class Snapshot:
    """A read backup: its header and its body (already checked against the sha256)."""

    header: dict[str, Any]
    body: bytes
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def format(self) -> int:
        return int(self.header["format"])

    @property
    def index(self) -> int:
        return int(self.header["index"])

    @property
    def sha256(self) -> str:
        return str(self.header["sha256"])


def encode(
    sealer: SnapshotSealer,
    *,
    index: int,
    body: bytes,
    tables: dict[str, int],
    server: str,
    created_ms: int,
    snapshot_format: int = SNAPSHOT_FORMAT,
) -> bytes:
    """The backup file for a body (raft.backup) the server just took."""
    header: dict[str, Any] = {
        "format": snapshot_format,
        "index": index,
        "cluster_id": sealer.cluster_id,
        "created": created_ms,
        "server": server,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "compression": COMPRESSION,
        "tables": dict(sorted(tables.items())),
    }
    header["mac"] = sealer.mac(header)
    packed = msgpack.packb(header, use_bin_type=True)
    return MAGIC + _LENGTH.pack(len(packed)) + packed + body


def encode_backup(sealer: SnapshotSealer, backup: Backup, server: str, created_ms: int) -> bytes:
    """The backup file of a backup ``server`` just took (Replica.backup)."""
    return encode(
        sealer,
        index=backup.index,
        body=backup.body,
        tables=backup.counts,
        server=server,
        created_ms=created_ms,
    )


def read_header(prefix: bytes) -> tuple[dict[str, Any], int]:
    """(header, offset of the body) from the first bytes of a file (at least
    the whole header); SnapshotError as `decode` says."""
    head = prefix[: len(MAGIC)]
    if not prefix or head != MAGIC[: len(head)]:
        raise SnapshotError("snapshot_invalid", "not a HeroCtl snapshot (no HCTLSNAP magic)")
    if len(prefix) < PREFIX:
        raise SnapshotError("snapshot_truncated", "the snapshot ends inside its header")
    (length,) = _LENGTH.unpack_from(prefix, len(MAGIC))
    if length > MAX_HEADER:
        raise SnapshotError("snapshot_corrupt", f"a header of {length} bytes: corrupt")
    end = PREFIX + length
    if len(prefix) < end:
        raise SnapshotError("snapshot_truncated", "the snapshot ends inside its header")
    try:
        header = msgpack.unpackb(prefix[PREFIX:end], raw=False)
    except (ValueError, TypeError) as e:
        raise SnapshotError("snapshot_corrupt", f"the header does not decode: {e}") from None
    if not isinstance(header, dict):
        raise SnapshotError("snapshot_corrupt", "the header is not a map")
    fmt = header.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise SnapshotError("snapshot_corrupt", "the header has no format")
    if fmt > SNAPSHOT_FORMAT:
        raise SnapshotError(
            "snapshot_too_new",
            f"the snapshot is of format {fmt}; this server reads format {SNAPSHOT_FORMAT} at "
            "most: restore it with a newer HeroCtl",
        )
    for key, kind in (("index", int), ("size", int), ("sha256", str), ("cluster_id", str)):
        if not isinstance(header.get(key), kind):
            raise SnapshotError("snapshot_corrupt", f"the header has no {key}")
    if header.get("compression", COMPRESSION) != COMPRESSION:
        raise SnapshotError("snapshot_invalid", f"unknown compression {header['compression']!r}")
    return header, end


def decode(data: bytes, sealer: SnapshotSealer | None = None) -> Snapshot:
    """Read and check a whole backup file (see the module's docstring for the
    order of the checks); `sealer` adds the cluster key's."""
    header, start = read_header(data)
    body = data[start:]
    size = header["size"]
    if len(body) < size:
        raise SnapshotError(
            "snapshot_truncated",
            f"the snapshot is truncated: its body has {len(body)} of {size} bytes",
        )
    if len(body) > size:
        raise SnapshotError(
            "snapshot_corrupt", f"{len(body) - size} bytes follow the snapshot's body"
        )
    if hashlib.sha256(body).hexdigest() != header["sha256"]:
        raise SnapshotError(
            "snapshot_corrupt", "the snapshot is corrupt: its body does not match its sha256"
        )
    if sealer is not None and (
        header["cluster_id"] != sealer.cluster_id or not sealer.mac_ok(header)
    ):
        raise SnapshotError("snapshot_foreign", FOREIGN)
    tables = header.get("tables")
    try:
        counts = {str(k): int(v) for k, v in tables.items()} if isinstance(tables, dict) else {}
    except (TypeError, ValueError):
        raise SnapshotError(
            "snapshot_corrupt", "the header's table counts are not counts"
        ) from None
    return Snapshot(header, body, counts)


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """What `inspect` shows: the header without its MAC, and that the checksum held."""
    h = snapshot.header
    return {
        "format": h["format"],
        "index": h["index"],
        "cluster_id": h["cluster_id"],
        "created": h.get("created"),
        "server": h.get("server"),
        "size": h["size"],
        "sha256": h["sha256"],
        "checksum_ok": True,
        "tables": snapshot.tables,
    }
