"""Cluster status, peers, membership and leadership transfer."""

from __future__ import annotations

from aiohttp import web

from api.context import CLUSTER_CA, blocking_view, read_headers, replica_of
from api.forward import leader_or_forward
from api.tls_ca import ca_keys
from domain.pki import CA_MAC_HEADER, fingerprint
from httpkit.errors import ApiError, read_json_object
from httpkit.identity import identity_of
from httpkit.responses import json_response
from raft.replica import Replica

routes = web.RouteTableDef()


@routes.get("/v1/cluster/status")
async def cluster_status(request: web.Request) -> web.Response:
    replica = replica_of(request)
    return json_response(await replica.status(), headers=read_headers(replica, replica.index))


@routes.get("/v1/cluster/ca")
async def cluster_ca(request: web.Request) -> web.Response:
    """The CA certificate (PEM; public, no token) clients verify this server
    with, its fingerprint, and the MAC a server joining with the cluster key
    checks before it trusts the CA (domain.pki.CaKeys.mac)."""
    source = request.app.get(CLUSTER_CA)  # what this server serves; else the state's CA
    if source is not None:
        pem = source()
    else:
        with replica_of(request).read() as view:
            row = view.pki.ca()
        pem = str(row["cert"]) if row is not None else None
    if pem is None:
        raise ApiError(
            404,
            "no_ca",
            "this server has no CA to serve: TLS is off, or [tls] mode = files has no ca_file",
        )
    headers = {
        "X-HeroCtl-CA-Fingerprint": fingerprint(pem),
        CA_MAC_HEADER: ca_keys(request).mac(pem),
    }
    return web.Response(text=pem, content_type="application/x-pem-file", headers=headers)


@routes.get("/v1/cluster/peers")
async def cluster_peers(request: web.Request) -> web.Response:
    # Peers answer from this server's raft view even without a leader (debugging
    # a broken cluster); only a long poll (`?index=`) needs a consistent read.
    if "index" in request.query:
        replica = await blocking_view(request, "servers")
    else:
        replica = replica_of(request)
    index = replica.table_index("servers")
    return json_response(await replica.peers(), headers=read_headers(replica, index))


def _resolve_peer(replica: Replica, ref: str) -> tuple[str, str | None]:
    """A server name or raft address -> (raft address, name)."""
    with replica.read() as view:
        for row in view.servers.values():
            if ref in (row["name"], row["raft_address"]):
                return row["raft_address"], row["name"]
    if ":" in ref:
        return ref, None
    raise ApiError(404, "peer_not_found", f"no server named '{ref}'")


@routes.post("/v1/cluster/peers")
async def add_peer(request: web.Request) -> web.Response:
    """A server joins (``heroctld --join``): only the server itself, with its
    own credential (proof that it holds the cluster key), may add itself and
    write its row; nobody else, management included, can point a server's
    name at another address."""
    body = await read_json_object(request)
    raft_address = body.get("raft_address")
    if not isinstance(raft_address, str) or ":" not in raft_address:
        raise ApiError(400, "invalid_field", "field 'raft_address' must be HOST:PORT")
    for field in ("name", "api_address"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise ApiError(400, "invalid_field", f"field '{field}' must be a non-empty string")
    name, api_address = body["name"], body["api_address"]
    identity = identity_of(request)
    if identity.kind != "server" or identity.name != name:
        raise ApiError(
            403,
            "join_proof_required",
            f"server '{name}' must join with its own credential (proof of the cluster key): "
            "start it with `heroctld --join HOST:PORT`",
        )
    if (forwarded := await leader_or_forward(request)) is not None:
        return forwarded
    replica = replica_of(request)
    await replica.add_server(raft_address)
    await replica.write(
        "server.register", name=name, raft_address=raft_address, api_address=api_address
    )
    members = await replica.members()
    return json_response({"raft_address": raft_address, "members": members}, status=201)


@routes.delete("/v1/cluster/peers/{name}")
async def remove_peer(request: web.Request) -> web.Response:
    replica = replica_of(request)
    raft_address, name = _resolve_peer(replica, request.match_info["name"])
    if (forwarded := await leader_or_forward(request)) is not None:
        return forwarded
    if raft_address == replica.identity.raft_address:
        # The leader cannot remove itself: hand over, then let the new leader do it.
        await replica.transfer_leadership(None)
        forwarded = await leader_or_forward(request)
        assert forwarded is not None
        return forwarded
    await replica.remove_server(raft_address)
    if name:
        await replica.write("server.forget", name=name)
    return json_response({"removed": raft_address, "name": name})


@routes.post("/v1/raft/transfer-leadership")
async def transfer_leadership(request: web.Request) -> web.Response:
    replica = replica_of(request)
    target = None
    if (await request.read()).strip():
        body = await read_json_object(request)
        to = body.get("to")
        if to is not None:
            if not isinstance(to, str) or not to:
                raise ApiError(
                    400, "invalid_field", "field 'to' must be a server name or raft address"
                )
            target, _ = _resolve_peer(replica, to)
    if (forwarded := await leader_or_forward(request)) is not None:
        return forwarded
    if target == replica.identity.raft_address:
        raise ApiError(409, "transfer_failed", "that server is already the leader")
    new_leader = await replica.transfer_leadership(target)
    row = replica.leader_server() or {}
    return json_response({"leader": row.get("name"), "leader_raft_address": new_leader})
