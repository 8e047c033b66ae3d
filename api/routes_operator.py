"""Operator endpoints: a backup of the whole replicated state.

The backup is the same msgpack snapshot the servers write for raft log
compaction: secrets and keys inside it are ciphertext, useless without the
cluster key. Management only (`/v1/operator` is not in the policy table).
"""

from __future__ import annotations

import base64

from aiohttp import web

from api.context import read_headers, read_view
from httpkit.responses import json_response

routes = web.RouteTableDef()
BACKUP_FORMAT = "heroctl-snapshot-msgpack-v1"


@routes.get("/v1/operator/backup")
async def backup(request: web.Request) -> web.Response:
    replica = await read_view(request)
    with replica.state.read() as s:
        index = s.index
        data = s.to_bytes()
    return json_response(
        {
            "format": BACKUP_FORMAT,
            "index": index,
            "bytes": len(data),
            "snapshot": base64.b64encode(data).decode(),
        },
        headers=read_headers(replica, index),
    )
