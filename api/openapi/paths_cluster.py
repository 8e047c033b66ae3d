"""Route table: health, cluster and raft, operator, nodes, metrics, the
servers' internal agent endpoints and this document (api/routes_health.py,
routes_cluster.py, routes_operator.py, routes_nodes.py, routes_metrics.py,
agent/http/endpoints.py, routes_openapi.py)."""

from __future__ import annotations

from api.openapi.schemas import named
from api.openapi.vocab import (
    BOOL,
    DURATION,
    INDEX,
    INT,
    LONG_POLL,
    NUM,
    STALE,
    STR,
    Op,
    Param,
    arr,
    obj,
    ok,
)
from domain.metric_series import METRICS

OBJECT = {"type": "object"}
TIME_PARAM = {
    "type": "string",
    "description": "`now`, a duration before now (`-1h30m`), unix seconds or RFC 3339.",
    "examples": ["-1h", "now", "1767225600", "2026-01-01T00:00:00Z"],
}
WINDOW = (
    Param("from", TIME_PARAM, "Start of the window (default: an hour before `to`)."),
    Param("to", TIME_PARAM, "End of the window (default: now)."),
    Param("step", DURATION, "Seconds per point (at least the sampling interval)."),
)
METRIC = Param("metric", {"enum": list(METRICS)}, "The metric.", required=True)
SERVERS_ONLY = "A server's credential (the agent endpoints answer the cluster's servers only)."
NODE_ONLY = "The node's own credential (or its server's, for an embedded agent)."
RESOURCES = {"type": "integer", "minimum": 0}

OPS: tuple[Op, ...] = (
    # --- health and this document ----------------------------------------------------------
    Op("GET", "/v1/health/live", "The process is alive", (ok(named("Health")),)),
    Op(
        "GET",
        "/v1/health/ready",
        "Ready to serve: knows a leader and applied what is committed",
        (ok(named("Health")),),
        errors={503: "Not ready (`not_ready`)."},
    ),
    Op(
        "GET",
        "/v1/openapi.json",
        "This document (OpenAPI 3.1)",
        (ok(OBJECT),),
    ),
    # --- cluster -----------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/cluster/status",
        "Raft status seen from this server",
        (ok(named("ClusterStatus")),),
    ),
    Op(
        "GET",
        "/v1/cluster/ca",
        "The cluster CA certificate (PEM) clients verify the servers with",
        (
            ok(
                {"type": "string"},
                "The PEM; `X-HeroCtl-CA-Fingerprint` is its SHA-256.",
                media="application/x-pem-file",
            ),
        ),
        errors={404: "TLS is off, or the server has no CA file."},
    ),
    Op(
        "GET",
        "/v1/cluster/peers",
        "The raft peers (servers)",
        (ok(arr(named("Peer"))),),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/cluster/peers",
        "A server joins the cluster (`heroctld --join`, the server's own credential)",
        (ok(obj({"raft_address": STR, "members": arr(STR)}, "*"), status=201),),
        body=obj({"name": STR, "raft_address": STR, "api_address": STR}, "*"),
        errors={409: "Raft refused the membership change."},
        access="The joining server's own credential (proof of the cluster key).",
        internal=True,
    ),
    Op(
        "DELETE",
        "/v1/cluster/peers/{name}",
        "Remove a server from the raft peers (by name or raft address)",
        (ok(obj({"removed": STR, "name": {"type": ["string", "null"]}}, "*")),),
        errors={409: "Raft refused the membership change."},
    ),
    Op(
        "POST",
        "/v1/raft/transfer-leadership",
        "Hand the leadership to another server (any, or `to`)",
        (
            ok(
                obj(
                    {
                        "leader": {"type": ["string", "null"]},
                        "leader_raft_address": {"type": ["string", "null"]},
                    },
                    "*",
                )
            ),
        ),
        body=obj({"to": {**STR, "description": "A server name or raft address."}}),
        body_required=False,
        errors={409: "That server is already the leader, or the transfer failed."},
    ),
    # --- operator ----------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/operator/backup",
        "The whole replicated state (secrets sealed), base64 in JSON",
        (
            ok(
                obj(
                    {
                        "format": STR,
                        "index": INDEX,
                        "bytes": INT,
                        "snapshot": {"type": "string", "contentEncoding": "base64"},
                    },
                    "*",
                )
            ),
        ),
        query=(STALE,),
    ),
    Op(
        "GET",
        "/v1/operator/snapshot",
        "A backup file of the whole state (secrets sealed; restore needs the same cluster key)",
        (
            ok(
                {"type": "string", "contentMediaType": "application/octet-stream"},
                "The file: a header (format, raft index, cluster id, sha256), then the tables.",
                media="application/octet-stream",
            ),
        ),
        query=(STALE,),
    ),
    Op(
        "PUT",
        "/v1/operator/snapshot",
        "Restore a backup file into the running cluster (through the log: every server)",
        (
            ok(
                obj(
                    {
                        "index": INDEX,
                        "restored_index": INDEX,
                        "cluster_id": STR,
                        "format": STR,
                        "sha256": STR,
                        "bytes": INT,
                        "tables": {"type": "object"},
                    },
                    ["index", "restored_index", "sha256", "bytes"],
                )
            ),
        ),
        description="A corrupt, truncated, too new or foreign file is refused (400) "
        "and nothing changes. The body may be up to 512 MiB.",
        body={"type": "string", "contentMediaType": "application/octet-stream"},
        body_media="application/octet-stream",
    ),
    Op(
        "GET",
        "/v1/operator/keyring",
        "The secrets keyring",
        (ok(named("Keyring")),),
        query=(STALE,),
    ),
    Op(
        "POST",
        "/v1/operator/keyring/rotate",
        "A new primary key; older secret versions are re-encrypted in the background",
        (ok(named("Keyring")),),
    ),
    Op(
        "POST",
        "/v1/operator/snapshot",
        "Compact this server's raft log into a snapshot",
        (
            ok(obj({"server": STR, "applied_index": INDEX, "written": BOOL}, "*"), "Written."),
            ok(
                obj({"server": STR, "applied_index": INDEX, "written": BOOL}, "*"),
                "Not written within `wait`.",
                202,
            ),
        ),
        query=(Param("wait", DURATION, "How long to wait for it (default 10s, at most 10m)."),),
    ),
    # --- nodes -------------------------------------------------------------------------------
    Op("GET", "/v1/nodes", "List nodes", (ok(arr(named("NodeSummary"))),), query=LONG_POLL),
    Op(
        "GET",
        "/v1/nodes/{id}",
        "Read a node (by id or name)",
        (ok(named("Node")),),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/nodes/{id}/drain",
        "Drain a node (move its allocations away) or end a drain",
        (ok(named("NodeDocument")),),
        body=obj(
            {
                "enable": {**BOOL, "default": True},
                "deadline_seconds": {"type": "integer", "minimum": 0, "default": 3600},
                "keep_ineligible": {**BOOL, "default": False},
            }
        ),
        query=(STALE,),
    ),
    Op(
        "POST",
        "/v1/nodes/{id}/eligibility",
        "Mark a node eligible or ineligible for new allocations",
        (ok(named("NodeDocument")),),
        errors={409: "A draining node cannot be made eligible."},
        body={
            "anyOf": [
                obj({"eligible": BOOL}, ["eligible"]),
                obj({"eligibility": {"enum": ["eligible", "ineligible"]}}, ["eligibility"]),
            ]
        },
        query=(STALE,),
    ),
    Op(
        "POST",
        "/v1/nodes/register",
        "An agent registers its node",
        (ok(named("NodeDocument")),),
        body=obj(
            {
                "id": STR,
                "name": STR,
                "address": STR,
                "resources": obj({"cpu": RESOURCES, "memory": RESOURCES, "disk": RESOURCES}),
                "drivers": arr(STR),
                "labels": OBJECT,
                "attributes": OBJECT,
                "port_range": arr(INT),
                "ingress": OBJECT,
                "agent_api": STR,
                "agent_secret": STR,
                "agent_csr": STR,
            },
            ["id", "name"],
        ),
        access=NODE_ONLY + " A first registration: an ACL token with `nodes: write`.",
        internal=True,
    ),
    Op(
        "POST",
        "/v1/nodes/{id}/heartbeat",
        "An agent's heartbeat (with its usage)",
        (ok(obj({"ttl_seconds": NUM, "status": STR}, "*")),),
        body=obj({"usage": OBJECT}),
        access=NODE_ONLY,
        internal=True,
    ),
    Op(
        "GET",
        "/v1/nodes/{id}/allocations",
        "What a node's agent runs (long poll)",
        (ok(arr(OBJECT)),),
        query=LONG_POLL,
        access=NODE_ONLY + " Or an ACL token with `nodes: read`.",
        internal=True,
    ),
    Op(
        "GET",
        "/v1/nodes/{id}/ingress",
        "The render model of a node's ingress proxy (long poll, with certificate keys)",
        (ok(OBJECT),),
        query=(
            *LONG_POLL,
            Param("digest", STR, "The model the node has: answer only when it differs."),
        ),
        access=NODE_ONLY,
        internal=True,
    ),
    Op(
        "POST",
        "/v1/nodes/{id}/ingress/applied",
        "A node's ingress serves the model it read at `index`",
        (ok(obj({"index": INDEX}, "*")),),
        body=obj({"index": INDEX}, "*"),
        access=NODE_ONLY,
        internal=True,
    ),
    # --- metrics -----------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/metrics",
        "The cluster's current metrics (or the Prometheus text format)",
        (ok(OBJECT, "The snapshot (JSON, or text with `format=prometheus`)."),),
        query=(
            Param("format", {"enum": ["json", "prometheus"]}, "Answer's format (default json)."),
        ),
        other_media=("text/plain",),
    ),
    Op(
        "GET",
        "/v1/metrics/query",
        "Time series of a metric: per node, job, allocation or ingress host",
        (
            ok(
                obj(
                    {
                        "metric": STR,
                        "unit": STR,
                        "scope": STR,
                        "from": NUM,
                        "to": NUM,
                        "step": NUM,
                        "series": arr(OBJECT),
                        "errors": {"anyOf": [arr({}), {"type": "object"}]},
                        "total": OBJECT,
                    },
                    ["metric", "from", "to", "step", "series"],
                )
            ),
        ),
        query=(
            METRIC,
            Param("job", STR, "A job's allocations (cpu, memory)."),
            Param("node", STR, "One node (id or name)."),
            Param("alloc", STR, "One allocation (cpu, memory)."),
            Param("host", STR, "An ingress host (the ingress metrics only)."),
            *WINDOW,
        ),
        errors={404: "No such job, node or allocation.", 503: "No node could be reached."},
    ),
    # --- the servers' internal agent endpoints (agent/http/endpoints.py) ---------------------
    Op(
        "GET",
        "/v1/agent/logs/{alloc}",
        "This server's agent's log lines of an allocation (JSON, or NDJSON with follow)",
        (ok(arr(OBJECT)),),
        query=(
            Param("lines", STR, "How many of the last lines (or `all`)."),
            Param("type", {"enum": ["stdout", "stderr"]}, "Only this stream."),
            Param("task", STR, "Only this task."),
            Param("since", INT, "Only lines after this (unix microseconds)."),
            Param("follow", STR, "`true`: an NDJSON stream of new lines."),
            Param("exists", STR, "`true`: 404 when there is no log here."),
        ),
        other_media=("application/x-ndjson",),
        access=SERVERS_ONLY,
        internal=True,
    ),
    Op(
        "GET",
        "/v1/agent/metrics/current",
        "This server's agent's last sample",
        (ok(OBJECT),),
        access=SERVERS_ONLY,
        internal=True,
    ),
    Op(
        "GET",
        "/v1/agent/metrics/query",
        "This server's agent's metric history",
        (ok(obj({"series": arr(OBJECT)})),),
        query=(
            METRIC,
            Param("job", STR, "A job's allocations."),
            Param("alloc", STR, "One allocation."),
            Param("host", STR, "An ingress host."),
            *WINDOW,
        ),
        errors={404: "This server runs no agent."},
        access=SERVERS_ONLY,
        internal=True,
    ),
)
