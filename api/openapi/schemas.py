"""The named answer schemas of the document (``#/components/schemas/...``).

Answers are open objects (a field added later breaks no client); each names
the fields a client can count on, with their types. Enums come from the
modules that own them, so the document follows the code.
"""

from __future__ import annotations

from api.openapi.vocab import (
    ANY,
    BOOL,
    INDEX,
    INT,
    NUM,
    STR,
    TIME,
    Schema,
    arr,
    nullable,
    obj,
    ref,
    string_map,
)
from raft.fsm_acl import TOKEN_TYPES, USER_TYPES
from raft.fsm_allocs import CLIENT_STATUSES
from raft.fsm_events import EVENT_TYPES

NAME = STR
NULL_STR = nullable(STR)
NULL_INT = nullable(INT)
OBJECT: Schema = {"type": "object"}


def _deleted(key: str) -> Schema:
    return obj({key: STR, "deleted": {"const": True}, "index": INDEX}, [key, "deleted"])


JOBS: dict[str, Schema] = {
    "JobSummary": obj(
        {
            "name": NAME,
            "type": STR,
            "status": {"enum": ["pending", "running", "dead"]},
            "version": NULL_INT,
            "create_index": NULL_INT,
            "modify_index": NULL_INT,
            "job_modify_index": NULL_INT,
            "submit_time": nullable(ANY),
            "groups": string_map(INT),
        },
        ["name", "status", "groups"],
    ),
    "JobDocument": obj(
        {
            "name": NAME,
            "type": STR,
            "version": INT,
            "job_modify_index": INDEX,
            "groups": arr(OBJECT),
            "status": STR,
            "placement_failures": ANY,
            "deployment": OBJECT,
            "allocations": string_map(INT),
        },
        ["name", "groups"],
        description="A stored job (the normalized spec with its server-owned fields) "
        "and, on a read, its status and placement.",
    ),
    "JobWritten": obj(
        {"name": NAME, "version": INT, "deployment_id": NULL_STR},
        ["name", "version"],
        description="The stored job, and the deployment its version started (null: none).",
    ),
    "JobScaled": obj(
        {
            "name": NAME,
            "group": STR,
            "previous_count": INT,
            "count": INT,
            "version": INT,
            "job_modify_index": INDEX,
            "deployment_id": NULL_STR,
            "index": INDEX,
        },
        "*",
    ),
    "JobPlan": obj(
        {
            "job": NAME,
            "job_modify_index": INDEX,
            "current_version": NULL_INT,
            "version": INT,
            "diff": ANY,
            "groups": ANY,
            "places": arr(OBJECT),
        },
        ["job", "job_modify_index", "diff", "places"],
    ),
    "Deployment": obj(
        {
            "id": STR,
            "job": NAME,
            "version": INT,
            "strategy": STR,
            "status": STR,
            "status_description": STR,
            "groups": string_map(OBJECT),
            "create_index": INDEX,
        },
        ["id", "job", "version", "status"],
    ),
    "AllocationSummary": obj(
        {
            "id": STR,
            "name": NULL_STR,
            "job": STR,
            "group": NULL_STR,
            "node": NULL_STR,
            "node_name": NULL_STR,
            "status": {"enum": list(CLIENT_STATUSES)},
            "desired_status": NULL_STR,
            "job_version": NULL_INT,
            "healthy": nullable(BOOL),
            "last_event": nullable(OBJECT),
        },
        ["id", "job", "status"],
    ),
    "Allocation": obj(
        {
            "id": STR,
            "job": STR,
            "status": {"enum": list(CLIENT_STATUSES)},
            "desired_status": STR,
            "task_states": OBJECT,
            "restarts": INT,
            "tasks": arr(STR),
        },
        ["id", "job", "status", "restarts", "tasks"],
    ),
    "LogLine": obj(
        {
            "alloc": STR,
            "task": STR,
            "stream": {"enum": ["stdout", "stderr"]},
            "ts": STR,
            "us": INT,
            "line": STR,
        },
        ["alloc", "line"],
    ),
    "Event": obj(
        {
            "id": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
            "seq": INT,
            "index": INDEX,
            "type": {"enum": list(EVENT_TYPES)},
            "time": TIME,
            "ts": INT,
            "data": OBJECT,
        },
        "*",
    ),
    "JobDeleted": _deleted("name"),
}

CLUSTER: dict[str, Schema] = {
    "Health": obj({"status": {"const": "ok"}}, "*"),
    "ClusterStatus": obj(
        {
            "leader": NULL_STR,
            "leader_raft_address": NULL_STR,
            "leader_api_address": NULL_STR,
            "node": STR,
            "raft_address": STR,
            "is_leader": BOOL,
            "members": INT,
            "reachable_members": INT,
            "healthy": BOOL,
            "raft_term": INT,
            "commit_index": INT,
            "applied_index": INT,
            "state_index": INT,
        },
        "*",
    ),
    "Peer": obj(
        {
            "name": NULL_STR,
            "raft_address": STR,
            "api_address": NULL_STR,
            "voter": BOOL,
            "role": {"enum": ["leader", "follower"]},
            "connected": BOOL,
            "last_contact_ms": nullable(NUM),
        },
        ["name", "raft_address", "role", "connected"],
    ),
    "NodeSummary": obj(
        {
            "id": STR,
            "name": NULL_STR,
            "address": NULL_STR,
            "status": NULL_STR,
            "eligibility": NULL_STR,
            "drain": nullable(BOOL),
            "drivers": arr(STR),
            "cpu": INT,
            "memory": INT,
            "allocated": obj({"cpu": INT, "memory": INT, "allocations": INT}, "*"),
            "modify_index": NULL_INT,
        },
        ["id", "status", "allocated"],
    ),
    "Node": obj(
        {
            "id": STR,
            "name": NULL_STR,
            "resources": OBJECT,
            "allocations": arr(OBJECT),
            "labels": OBJECT,
            "attributes": OBJECT,
        },
        ["id", "resources", "allocations"],
    ),
    "NodeDocument": obj(
        {"id": STR, "name": STR, "status": NULL_STR, "eligibility": NULL_STR},
        ["id"],
        description="A node as registered (without its sealed secret).",
    ),
    "Keyring": obj(
        {
            "primary": NULL_STR,
            "keys": arr(
                obj(
                    {"id": STR, "primary": BOOL, "create_time": TIME, "secret_versions": INT},
                    "*",
                )
            ),
        },
        "*",
    ),
}

ACCESS: dict[str, Schema] = {
    "LoginAnswer": obj(
        {
            "token": STR,
            "expires_at": {"type": "string", "format": "date-time"},
            "refresh_token": STR,
        },
        "*",
    ),
    "Policy": obj({"name": STR, "description": STR, "rules": OBJECT}, ["name", "rules"]),
    "Role": obj({"name": STR, "description": STR, "policies": arr(STR)}, ["name", "policies"]),
    "Token": obj(
        {
            "accessor_id": STR,
            "name": STR,
            "type": {"enum": list(TOKEN_TYPES)},
            "policies": arr(STR),
            "roles": arr(STR),
            "create_time": TIME,
            "expires_at": TIME,
        },
        ["accessor_id", "type"],
        description="An ACL token (never its secret, but once: `secret_id` when created).",
    ),
    "User": obj(
        {
            "username": STR,
            "type": {"enum": list(USER_TYPES)},
            "policies": arr(STR),
            "roles": arr(STR),
            "has_password": BOOL,
        },
        ["username"],
    ),
    "SecretMeta": obj(
        {
            "name": STR,
            "version": INT,
            "create_time": TIME,
            "modify_time": TIME,
            "create_index": INDEX,
            "modify_index": INDEX,
        },
        ["name", "version"],
        description="A secret's metadata: never its value.",
    ),
    "SecretVersion": obj(
        {
            "version": INT,
            "create_time": TIME,
            "create_index": INDEX,
            "key_id": STR,
            "rollback_of": NULL_INT,
            "current": BOOL,
        },
        "*",
    ),
    "Webhook": obj(
        {
            "id": STR,
            "url": STR,
            "events": arr(STR),
            "create_time": TIME,
            "delivery": OBJECT,
        },
        ["id", "url", "events"],
        description="A webhook (never its secret).",
    ),
    "IngressSummary": obj(
        {
            "host": STR,
            "source": {"enum": ["job", "api"]},
            "job": NULL_STR,
            "routes": arr(OBJECT),
            "tls": obj({"mode": STR, "status": NULL_STR, "not_after": nullable(ANY)}, ["mode"]),
        },
        ["host", "source", "routes", "tls"],
    ),
    "Ingress": obj(
        {
            "host": STR,
            "source": {"enum": ["job", "api"]},
            "job": NULL_STR,
            "jobs": arr(STR),
            "tls": STR,
            "cert": OBJECT,
            "routes": arr(OBJECT),
        },
        ["host", "source", "tls", "routes"],
    ),
    "Deleted": obj({"deleted": {"const": True}}, ["deleted"]),
}

# The internal routes' answers are open objects (their callers are the servers).
ALL: dict[str, Schema] = {**JOBS, **CLUSTER, **ACCESS}


def named(name: str) -> Schema:
    """A reference to one of these (KeyError for a name that is not one)."""
    ALL[name]  # noqa: B018 - fail early on a typo
    return ref(name)
