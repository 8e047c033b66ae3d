"""Jobs as stored documents: list, read, submit (new version, CAS), delete;
scale one group (a new version too), plan a submit (a dry run), and the job
spec's JSON Schema (``GET /v1/jobs/schema``)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from api.context import blocking_view, read_headers, read_view, replica_of
from api.jobspec import check_name, parse_submission, summary
from domain.job_plan import plan_job
from domain.jobspec.schema import schema_json
from httpkit.errors import ApiError, read_json_object
from httpkit.identity import identity_of
from httpkit.responses import RenderedViews, dumps, json_body_response, json_response
from raft.fsm_jobs import scale_count_refusal, scaled_group
from raft.replica import StateView

routes = web.RouteTableDef()
JOB_VIEWS = web.AppKey("job_views", RenderedViews)  # GET /v1/jobs/:name bodies
# A job's status comes from its allocations and placement results: a
# long poll on a job wakes when any of them changes.
JOB_TABLES = ("jobs", "allocations", "job_status")


def job_state(view: StateView, name: str) -> str:
    """pending (nothing runs yet), running (something runs) or dead (all stopped/done)."""
    allocs = view.allocs.by_job(name)
    if any(a["status"] == "running" and a["desired_status"] == "run" for a in allocs):
        return "running"
    if (
        allocs
        and all(
            a["desired_status"] == "stop" or a["status"] in ("complete", "failed", "lost")
            for a in allocs
        )
        and not view.job_status.get(name, {}).get("failures")
    ):
        return "dead"
    return "pending"


def placement_view(view: StateView, name: str) -> dict[str, Any]:
    st = view.job_status.get(name) or {}
    allocs = view.allocs.by_job(name)
    counts: dict[str, int] = {}
    for a in allocs:
        if a["desired_status"] == "run":
            counts[a["status"]] = counts.get(a["status"], 0) + 1
    return {
        "placement_failures": st.get("failures", []),
        "deployment": {
            "job_version": st.get("job_version"),  # the version last evaluated with changes
            "evaluated_index": st.get("index"),
            "deferred": st.get("deferred", {}),
            "halted": st.get("halted", {}),
        },
        "allocations": counts,
    }


@routes.get("/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    replica = await blocking_view(request, *JOB_TABLES)
    with replica.read() as view:
        jobs = [
            dict(summary(doc), status=job_state(view, name))
            for name, doc in sorted(view.jobs.items())
        ]
        index = view.index_of(*JOB_TABLES)
    return json_response(jobs, headers=read_headers(replica, index))


# Registered before GET /v1/jobs/{name}, and "schema" is no job's name
# (domain.jobspec.schema.RESERVED_JOB_NAMES, refused by api.jobspec): this path
# is always the schema.
@routes.get("/v1/jobs/schema")
async def get_job_schema(request: web.Request) -> web.Response:
    """The job spec's JSON Schema (draft 2020-12: domain/jobspec/schema.py), what
    `heroctl job validate` checks files with; the same on every server of a version."""
    return web.Response(text=schema_json(), content_type="application/schema+json", charset="utf-8")


@routes.get("/v1/jobs/{name}")
async def get_job(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    replica = await blocking_view(request, *JOB_TABLES)
    views = request.app[JOB_VIEWS]
    with replica.read() as view:
        index = view.index_of(*JOB_TABLES)
        body = views.get(name, index)
        if body is None:
            doc = view.jobs.get(name)
            if doc is None:
                raise ApiError(404, "job_not_found", f"job '{name}' does not exist")
            rendered = dict(doc, status=job_state(view, name), **placement_view(view, name))
            body = views.put(name, index, dumps(rendered))
    return json_body_response(body, headers=read_headers(replica, index))


@routes.get("/v1/jobs/{name}/versions")
async def get_job_versions(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    replica = await blocking_view(request, "jobs", "job_versions")
    with replica.read() as view:
        versions = view.jobs.versions(name)
        index = max(view.jobs.index, view.job_versions.index)
    if not versions:
        raise ApiError(404, "job_not_found", f"job '{name}' does not exist")
    return json_response(versions, headers=read_headers(replica, index))


def check_grants(request: web.Request, spec: dict[str, Any]) -> None:
    """jobs: write is not root on every node: what the job asks of the nodes,
    and every secret it references, must be granted to its submitter."""
    refused = identity_of(request).permissions.job_refusals(spec)
    if refused:
        raise ApiError(
            403, "forbidden", "this token may not submit this job: " + "; ".join(refused)
        )


def check_cas(cas: Any) -> int | None:
    """A check-and-set ``job_modify_index`` (None: no check), or a 400 (as a submit's)."""
    if cas is not None and (not isinstance(cas, int) or isinstance(cas, bool) or cas < 0):
        raise ApiError(400, "invalid_field", "job_modify_index: must be a non-negative integer")
    return cas


def _refused(refusal: dict[str, Any]) -> ApiError:
    """An FSM helper's refusal as the API's error."""
    return ApiError(refusal["status"], refusal["error"], refusal["message"])


@routes.post("/v1/jobs")
async def submit_job(request: web.Request) -> web.Response:
    spec, cas = parse_submission(await read_json_object(request))
    check_grants(request, spec)
    result = await replica_of(request).write("job.upsert", job=spec, cas=cas)
    status = 201 if result["created"] else 200
    # the job, and the deployment this version started (None: it changes no allocation)
    body = dict(result["job"], deployment_id=result.get("deployment"))
    return json_response(body, status=status, headers={"X-HeroCtl-Index": str(result["index"])})


@routes.delete("/v1/jobs/{name}")
async def delete_job(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    result = await replica_of(request).write("job.delete", name=name)
    return json_response(
        {"name": name, "deleted": True, "index": result["index"]},
        headers={"X-HeroCtl-Index": str(result["index"])},
    )


@routes.post("/v1/jobs/{name}/scale")
async def scale_job(request: web.Request) -> web.Response:
    """``{"group", "count", "job_modify_index"?}``: a new version of the job
    with that group's count (the group may be left out when the job has one).
    Checked here first, so a bad request costs no raft entry, and again by
    the FSM in the log's order."""
    name = check_name(request.match_info["name"])
    body = await read_json_object(request)
    group, count = body.get("group"), body.get("count")
    refusal = scale_count_refusal(count)
    if refusal is not None:
        raise _refused(refusal)
    if group is not None and not isinstance(group, str):
        raise ApiError(400, "invalid_field", "group: must be a string")
    cas = check_cas(body.get("job_modify_index"))
    replica = await read_view(request)
    with replica.read() as view:
        job = view.jobs.get(name)
    if job is None:
        raise ApiError(404, "job_not_found", f"job '{name}' does not exist")
    target = scaled_group(job, group)
    if target.get("ok") is False:
        raise _refused(target)
    result = await replica.write("job.scale", name=name, group=group, count=count, cas=cas)
    doc = result["job"]
    return json_response(
        {
            "name": name,
            "group": result["group"],
            "previous_count": result["previous_count"],
            "count": result["count"],
            "version": doc["version"],
            "job_modify_index": doc["job_modify_index"],
            "deployment_id": result.get("deployment"),
            "index": result["index"],
        },
        headers={"X-HeroCtl-Index": str(result["index"])},
    )


@routes.post("/v1/jobs/{name}/revert")
async def revert_job(request: web.Request) -> web.Response:
    """``{"version": N, "job_modify_index"?}``: a new version of the job with
    version N's spec (400 for a non-integer, 404 for an unknown job, 409 for
    a version the job does not have)."""
    name = check_name(request.match_info["name"])
    body = await read_json_object(request)
    version = body.get("version")
    if version is None:
        raise ApiError(400, "missing_field", "version: is required")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ApiError(400, "invalid_field", "version: must be a non-negative integer")
    cas = check_cas(body.get("job_modify_index"))
    replica = await read_view(request)
    with replica.read() as view:
        versions = view.jobs.versions(name)
    if not versions:
        raise ApiError(404, "job_not_found", f"job '{name}' does not exist")
    target = next((v for v in versions if v.get("version") == version), None)
    if target is None:
        known = ", ".join(str(v.get("version")) for v in versions)
        raise ApiError(
            409, "version_not_found", f"job '{name}' has no version {version} (it has: {known})"
        )
    check_grants(request, target)
    result = await replica.write("job.revert", name=name, version=version, cas=cas)
    doc = result["job"]
    return json_response(
        dict(
            doc, reverted_to=version, deployment_id=result.get("deployment"), index=result["index"]
        ),
        headers={"X-HeroCtl-Index": str(result["index"])},
    )


@routes.post("/v1/jobs/{name}/plan")
async def plan_submit(request: web.Request) -> web.Response:
    """A dry run of ``POST /v1/jobs`` with this body: the diff against the
    current version and what the scheduler would do (domain.job_plan).
    Nothing is written; ``job_modify_index`` is what ``--check-index`` wants."""
    name = check_name(request.match_info["name"])
    body = await read_json_object(request)
    raw = body.get("job") if isinstance(body.get("job"), dict) else body
    if raw.get("name") is None:
        raw = dict(raw, name=name)
    spec, _cas = parse_submission(raw)
    if spec["name"] != name:
        raise ApiError(
            400, "invalid_field", f"name: the spec names job '{spec['name']}', the path '{name}'"
        )
    check_grants(request, spec)
    replica = await read_view(request)
    with replica.read() as view:
        current = view.jobs.get(name)
        nodes = list(view.nodes.values())
        allocs = list(view.allocs.values())
        index = view.index_of("jobs", "nodes", "allocations")
    # The scheduler's usage index costs O(nodes + allocations) (a second or
    # more for tens of thousands): built off the loop, from the documents
    # read above (never changed in place, so a thread may read them).
    loop = asyncio.get_running_loop()
    plan = await loop.run_in_executor(None, plan_job, current, spec, nodes, allocs)
    return json_response(plan, headers=read_headers(replica, index))
