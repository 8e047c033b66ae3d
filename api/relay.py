"""Where a node's logs and metrics are, and how a server asks for them.

Logs and metrics stay on the node that ran an allocation. A server reads
its own agent's stores directly; for any other node it calls the internal
agent endpoints (``/v1/agent/...``, :mod:`agent.http.endpoints`) where they
are served:

- a node that is a server (its embedded agent): that server's API, with
  this server's ``hs_`` credential (made from the cluster key, for that
  server);
- a worker-only node (``heroctld agent``): the agent API it advertised when
  it registered, with an ``hn_`` credential made from the secret it
  registered (sealed in the replicated state; see
  :mod:`domain.node_credentials`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from api.context import TLS_CLIENT, replica_of
from api.security.runtime import SECURITY, security_of
from domain.node_credentials import NodeSecretError, node_token
from httpkit.local_node import LOCAL_NODE
from raft.replica import StateView

RELAY_SESSION = web.AppKey("relay_session", aiohttp.ClientSession)


async def relay_session_ctx(app: web.Application):  # cleanup_ctx
    """A session for talking to other nodes' agent endpoints: no total
    timeout (streams last), big line buffer (NDJSON lines of long logs),
    servers verified against the cluster CA."""
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        read_bufsize=2**20,
        connector=aiohttp.TCPConnector(limit=0, ssl=app.get(TLS_CLIENT, True)),
    )
    app[RELAY_SESSION] = session
    yield
    await session.close()


@dataclass(frozen=True)
class Location:
    """Where the agent of a node answers: here (``local``), a server's API,
    or a worker-only node's agent API (``node_id`` and ``secret`` set)."""

    node_name: str
    local: bool
    url: str | None = None
    node_id: str | None = None
    secret: str | None = field(default=None, repr=False)


class NodeUnreachable(Exception):
    pass


def worker_nodes(view: StateView) -> list[dict[str, Any]]:
    """Nodes that are not servers and serve an agent API, ready first."""
    servers = view.servers
    found = [
        n
        for n in view.nodes.values()
        if n.get("name") not in servers and n.get("agent_api") and n.get("agent_secret")
    ]
    return sorted(found, key=lambda n: (n.get("status") != "ready", -(n.get("modify_index") or 0)))


def locate(request: web.Request, node_name: str | None, node_id: str | None = None) -> Location:
    """Where the agent of a node answers (by its id when known: names of
    worker-only nodes need not be unique)."""
    replica = replica_of(request)
    if not node_name:
        raise NodeUnreachable("the allocation is not placed on a node")
    local = request.app[LOCAL_NODE]
    if node_name == replica.identity.name:
        if local.logs is None:
            raise NodeUnreachable(f"node '{node_name}' runs no agent")
        return Location(node_name, True)
    with replica.read() as view:
        row = view.servers.get(node_name)
        node = view.nodes.get(node_id) if node_id else None
        if node is None and not row:
            node = next((n for n in worker_nodes(view) if n.get("name") == node_name), None)
    if row and row.get("api_address"):
        return Location(node_name, False, str(row["api_address"]).rstrip("/"))
    if node is None or not node.get("agent_api") or not node.get("agent_secret"):
        raise NodeUnreachable(
            f"node '{node_name}' is a worker-only node that serves no agent API "
            "(started without an api port, or by an older heroctld): its logs and metrics stay on it"
        )
    try:
        secret = security_of(request).node_secrets.open(node["id"], node["agent_secret"])
    except NodeSecretError as exc:
        raise NodeUnreachable(str(exc)) from None
    return Location(node_name, False, str(node["agent_api"]).rstrip("/"), node["id"], secret)


def agent_headers(request: web.Request, loc: Location) -> dict[str, str]:
    """This server's credential for the node's agent endpoints."""
    me = replica_of(request).identity.name
    if loc.secret is not None and loc.node_id is not None:
        token = node_token(loc.secret, loc.node_id, me)
    else:
        token = request.app[SECURITY].keys.server_token(me, audience=loc.node_name)
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


async def agent_get(
    request: web.Request, loc: Location, path: str, params: dict[str, str], timeout: float = 10.0
) -> Any:
    """GET an internal agent endpoint of another node; NodeUnreachable on any failure."""
    assert loc.url is not None
    session = request.app[RELAY_SESSION]
    try:
        async with session.get(
            loc.url + path,
            params=params,
            headers=agent_headers(request, loc),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as r:
            body = await r.read()
            if r.status != 200:
                message = body.decode(errors="replace")[:300]
                with contextlib.suppress(ValueError, AttributeError):
                    message = json.loads(body).get("message", message)
                raise NodeUnreachable(f"node '{loc.node_name}' answered {r.status}: {message}")
            return json.loads(body)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise NodeUnreachable(
            f"node '{loc.node_name}' at {loc.url} did not answer: {exc or type(exc).__name__}"
        ) from None
