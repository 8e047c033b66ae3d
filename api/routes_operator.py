"""Operator endpoints: backups and restores of the whole replicated state,
raft snapshots, the keyring.

- `GET /v1/operator/snapshot`: a backup file (domain.snapshot_archive: a
  header with the format, index, cluster id and sha256, then the compressed
  tables); `PUT` restores one through the log, so every server converges
  (api.snapshots checks it first: a corrupt, truncated, too new or foreign
  one is refused and nothing changes). `heroctl operator snapshot save|restore|inspect`.
- `GET /v1/operator/backup`: the older form, the raft snapshot's msgpack in
  base64 JSON (no header, no restore).
- `POST /v1/operator/snapshot`: compact this server's raft log now.

Secrets and keys inside a backup are ciphertext, useless without the cluster
key. Management only (`/v1/operator` is not in the policy table, so the
middleware demands a management identity).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from aiohttp import web

from api.context import parse_wait, read_headers, read_view, replica_of
from api.snapshots import check_upload, read_upload, sealer_of, take
from domain.crypto import new_key_id
from httpkit.responses import json_response, ms_to_rfc3339
from raft.replica import Replica

routes = web.RouteTableDef()
BACKUP_FORMAT = "heroctl-snapshot-msgpack-v1"
_RESTORING = asyncio.Lock()  # one restore at a time through this server


@routes.get("/v1/operator/snapshot")
async def save_snapshot(request: web.Request) -> web.Response:
    """The backup file (application/octet-stream), after a consistent read."""
    replica = await read_view(request)
    index, data = await take(replica, sealer_of(request))
    headers = read_headers(replica, index)
    headers["Content-Disposition"] = f'attachment; filename="heroctl-{index}.snap"'
    return web.Response(body=data, content_type="application/octet-stream", headers=headers)


@routes.put("/v1/operator/snapshot")
async def restore_snapshot(request: web.Request) -> web.Response:
    """Restore a backup file into the running cluster, through the log."""
    replica = replica_of(request)
    snapshot = await check_upload(request, await read_upload(request))
    async with _RESTORING:
        result = await replica.restore(snapshot.body, snapshot.sha256, snapshot.format)
    body = {
        "index": result["index"],
        "restored_index": result["restored_index"],
        "cluster_id": snapshot.header["cluster_id"],
        "format": snapshot.format,
        "sha256": snapshot.sha256,
        "bytes": len(snapshot.body),
        "tables": result["tables"],
    }
    return json_response(body, headers={"X-HeroCtl-Index": str(result["index"])})


@routes.get("/v1/operator/backup")
async def backup(request: web.Request) -> web.Response:
    replica = await read_view(request)
    index, data = replica.snapshot_bytes()
    return json_response(
        {
            "format": BACKUP_FORMAT,
            "index": index,
            "bytes": len(data),
            "snapshot": base64.b64encode(data).decode(),
        },
        headers=read_headers(replica, index),
    )


def _keyring_view(replica: Replica) -> dict[str, Any]:
    with replica.read() as view:
        ring = view.secrets.keyring()
        used = view.secrets.keys_in_use()
    if ring is None:
        return {"primary": None, "keys": []}
    keys = [
        {
            "id": k["id"],
            "primary": k["id"] == ring["primary"],
            "create_time": ms_to_rfc3339(k["create_time"]),
            "secret_versions": used.get(k["id"], 0),
        }
        for k in sorted(ring["keys"].values(), key=lambda k: k["create_index"])
    ]
    return {"primary": ring["primary"], "keys": keys}


@routes.get("/v1/operator/keyring")
async def get_keyring(request: web.Request) -> web.Response:
    replica = await read_view(request)
    return json_response(
        _keyring_view(replica), headers=read_headers(replica, replica.table_index("keyring"))
    )


@routes.post("/v1/operator/keyring/rotate")
async def rotate_keyring(request: web.Request) -> web.Response:
    replica = replica_of(request)
    result = await replica.write("keyring.rotate", key_id=new_key_id())
    out = _keyring_view(replica)
    out["reencrypting"] = sum(k["secret_versions"] for k in out["keys"] if not k["primary"])
    return json_response(out, headers={"X-HeroCtl-Index": str(result["index"])})


@routes.post("/v1/operator/snapshot")
async def force_snapshot(request: web.Request) -> web.Response:
    """Compact this server's raft log into a snapshot (tests, before backups).

    pysyncobj takes a forced snapshot at the next moment its compaction
    schedule allows (with `logCompactionSplit`, each server has a slot in every
    `raft.compaction_min_time` period), so this waits up to `?wait=` seconds
    (default 10) and says whether the snapshot was written. A `noop` write
    goes first: pysyncobj writes no snapshot while the last one already covers
    every applied entry (consistent reads add no entries), and with it the
    snapshot holds every write acknowledged before the call.
    """
    replica = replica_of(request)
    wait = parse_wait(request.query.get("wait", "10"))
    written = await replica.snapshot(wait)
    return json_response(
        {"server": replica.identity.name, "applied_index": replica.index, "written": written},
        status=200 if written else 202,
    )
