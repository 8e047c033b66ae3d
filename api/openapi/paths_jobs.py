"""Route table: jobs, deployments, allocations, logs and events
(api/routes_jobs.py, routes_deployments.py, routes_allocations.py,
routes_logs.py, routes_events.py)."""

from __future__ import annotations

from api.openapi.schemas import named
from api.openapi.vocab import (
    INDEX,
    INT,
    LONG_POLL,
    STALE,
    STR,
    Op,
    Param,
    arr,
    job_filter,
    obj,
    ok,
    ref,
)
from raft.fsm_allocs import CLIENT_STATUSES
from raft.fsm_events import EVENT_TYPES, TOPICS

CAS = {
    **INDEX,
    "description": "Check-and-set: refused (409) unless the job's `job_modify_index` is this.",
}
LINES = Param(
    "lines",
    {"anyOf": [{"type": "integer", "minimum": 0}, {"const": "all"}]},
    "How many of the last lines (default 100; 10 before a stream; `all`).",
)
LOG_TYPE = Param("type", {"enum": ["stdout", "stderr"]}, "Only this stream.")
TASK = Param("task", STR, "Only this task's lines.")
STREAM = Param(
    "stream",
    {"type": "string", "examples": ["true"]},
    "`true`: a `text/event-stream` (`event: log` lines, `event: error`, `event: dropped`).",
)
SINCE = Param("since", INT, "With a stream: every line after this time (unix microseconds).")
SSE = "text/event-stream"  # with ?stream=true
LOG_PARAMS = (LINES, LOG_TYPE, TASK, STREAM, SINCE, STALE)


def _deployment_step(action: str, what: str) -> Op:
    return Op(
        "POST",
        f"/v1/deployments/{{id}}/{action}",
        what,
        (ok(named("Deployment")),),
        errors={409: "The deployment's status does not allow it."},
    )


OPS: tuple[Op, ...] = (
    # --- jobs --------------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/jobs",
        "List jobs",
        (ok(arr(named("JobSummary"))),),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/jobs",
        "Submit a job (a new version when it exists)",
        (
            ok(named("JobWritten"), "A new version of an existing job."),
            ok(named("JobWritten"), "A new job.", 201),
        ),
        description="The body is the job (the full form or the single-task shorthand, "
        'see `GET /v1/jobs/schema`) or `{"job": ..., "job_modify_index": N}`.',
        body=ref("JobSubmission"),
        errors={409: "The check-and-set index does not match."},
    ),
    Op(
        "GET",
        "/v1/jobs/schema",
        "The job spec's JSON Schema (draft 2020-12)",
        (
            ok(
                {"type": "object"},
                "The schema (also `#/components/schemas/Job` here).",
                media="application/schema+json",
            ),
        ),
    ),
    Op(
        "GET",
        "/v1/jobs/{name}",
        "Read a job, with its status and placement",
        (ok(named("JobDocument")),),
        query=LONG_POLL,
    ),
    Op(
        "DELETE",
        "/v1/jobs/{name}",
        "Delete a job and stop its allocations",
        (ok(named("JobDeleted")),),
    ),
    Op(
        "GET",
        "/v1/jobs/{name}/versions",
        "A job's kept versions, newest first",
        (ok(arr(named("JobDocument"))),),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/jobs/{name}/scale",
        "Set one group's count (a new version of the job)",
        (ok(named("JobScaled")),),
        body=obj(
            {
                "group": {**STR, "description": "May be left out when the job has one group."},
                "count": {"type": "integer", "minimum": 0},
                "job_modify_index": CAS,
            },
            ["count"],
        ),
        errors={409: "The check-and-set index does not match."},
    ),
    Op(
        "POST",
        "/v1/jobs/{name}/revert",
        "Submit an older version's spec again (a new version)",
        (ok(named("JobDocument")),),
        body=obj(
            {"version": {"type": "integer", "minimum": 0}, "job_modify_index": CAS}, ["version"]
        ),
        errors={409: "The job has no such version, or the check-and-set index does not match."},
    ),
    Op(
        "POST",
        "/v1/jobs/{name}/plan",
        "A dry run of a submit: the diff and what the scheduler would do",
        (ok(named("JobPlan")),),
        body=ref("JobSubmission"),
        query=(STALE,),
    ),
    # --- deployments -------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/deployments",
        "List deployments, newest first",
        (ok(arr(named("Deployment"))),),
        query=(job_filter("deployments"), *LONG_POLL),
    ),
    Op(
        "GET",
        "/v1/deployments/{id}",
        "Read a deployment",
        (ok(named("Deployment")),),
        query=LONG_POLL,
    ),
    _deployment_step("fail", "Fail a deployment (auto_revert reverts the job)"),
    _deployment_step("pause", "Pause a deployment"),
    _deployment_step("resume", "Resume a paused deployment"),
    _deployment_step("promote", "Promote a canary or blue-green deployment"),
    # --- allocations -------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/allocations",
        "List allocations",
        (ok(arr(named("AllocationSummary"))),),
        query=(
            job_filter("allocations"),
            Param("node", STR, "Only the allocations of this node (id or name)."),
            Param("status", {"enum": list(CLIENT_STATUSES)}, "Only allocations in this status."),
            *LONG_POLL,
        ),
    ),
    Op(
        "GET",
        "/v1/allocations/{id}",
        "Read an allocation (a unique prefix of its id works)",
        (ok(named("Allocation")),),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/allocations/{id}/stop",
        "Stop an allocation (the scheduler replaces it)",
        (ok(named("Allocation")),),
        query=(STALE,),
    ),
    Op(
        "POST",
        "/v1/allocations/{id}/restart",
        "Restart an allocation's tasks in place",
        (ok(named("Allocation")),),
        body=obj({"task": {**STR, "description": "Only this task."}}),
        body_required=False,
        query=(STALE,),
        errors={409: "The allocation is not running, or has no such task."},
    ),
    Op(
        "POST",
        "/v1/allocations/status",
        "An agent reports its allocations' status",
        (ok(obj({"applied": INT, "refused": arr(STR), "index": INDEX}, ["applied", "index"])),),
        body=obj(
            {"node": STR, "updates": arr(obj({"id": STR}, ["id"]), maxItems=1000)},
            ["node", "updates"],
        ),
        errors={404: "The node is not registered."},
        internal=True,
    ),
    Op(
        "GET",
        "/v1/allocations/{id}/secrets",
        "The secret env (and registry password) of one task, for its node",
        (
            ok(
                obj(
                    {
                        "env": {"type": "object", "additionalProperties": STR},
                        "registry_auth": obj({"username": STR, "password": STR}, "*"),
                    },
                    ["env"],
                )
            ),
        ),
        query=(Param("task", STR, "The task whose secrets.", required=True), STALE),
        internal=True,
    ),
    # --- logs -----------------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/logs/{alloc}",
        "The last lines of an allocation's logs, or a live stream",
        (ok(arr(named("LogLine"))),),
        query=LOG_PARAMS,
        errors={503: "The node keeping the logs cannot be reached."},
        other_media=(SSE,),
    ),
    Op(
        "GET",
        "/v1/logs",
        "Logs of a whole job (merged) or of one allocation, or a live stream",
        (ok(arr(named("LogLine"))),),
        query=(job_filter("logs"), Param("alloc", STR, "One allocation's logs."), *LOG_PARAMS),
        errors={404: "No such job or allocation.", 503: "No node keeping the logs can be reached."},
        other_media=(SSE,),
    ),
    # --- events ---------------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/events",
        "The event stream: a page, a long poll, or server-sent events",
        (ok(arr(named("Event"))),),
        description="`X-HeroCtl-Index` is what to pass as `index` next time. With "
        "`stream=true`: `text/event-stream`, `id: <index>-<seq>`, `event: <type>`; "
        "`Last-Event-ID` resumes.",
        query=(
            Param(
                "topic",
                STR,
                "Comma-separated event types or prefixes ("
                + ", ".join(TOPICS)
                + "); `*` for all. Types: "
                + ", ".join(EVENT_TYPES)
                + ".",
            ),
            Param("index", {"type": "integer", "minimum": 0}, "Start after this raft index."),
            Param("wait", LONG_POLL[1].schema, "With `index`: block up to this long (default 5m)."),
            Param("limit", {"type": "integer", "minimum": 0}, "At most this many (default 1000)."),
            STREAM,
            Param("Last-Event-ID", STR, "Resume a stream after this event.", where="header"),
            STALE,
        ),
        other_media=(SSE,),
    ),
)
