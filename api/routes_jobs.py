"""Jobs as stored documents: list, read, submit (new version, CAS), delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.context import blocking_view, read_headers, replica_of
from api.jobspec import check_name, parse_submission, summary
from httpkit.errors import ApiError, read_json_object
from httpkit.identity import identity_of
from httpkit.responses import RenderedViews, dumps, json_body_response, json_response
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


@routes.post("/v1/jobs")
async def submit_job(request: web.Request) -> web.Response:
    spec, cas = parse_submission(await read_json_object(request))
    # jobs: write is not root on every node: what the job asks of the nodes,
    # and every secret it references, must be granted to its submitter.
    refused = identity_of(request).permissions.job_refusals(spec)
    if refused:
        raise ApiError(
            403, "forbidden", "this token may not submit this job: " + "; ".join(refused)
        )
    result = await replica_of(request).write("job.upsert", job=spec, cas=cas)
    status = 201 if result["created"] else 200
    return json_response(
        result["job"], status=status, headers={"X-HeroCtl-Index": str(result["index"])}
    )


@routes.delete("/v1/jobs/{name}")
async def delete_job(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    result = await replica_of(request).write("job.delete", name=name)
    return json_response(
        {"name": name, "deleted": True, "index": result["index"]},
        headers={"X-HeroCtl-Index": str(result["index"])},
    )
