"""The one client for the HeroCtl API, shared by the CLI and the node agent:
a typed method per resource (cluster, jobs, nodes, allocations, logs,
metrics) over `client.transport.HttpClient`.

Everything outside the daemon reaches the cluster through this library, so
the error envelope (`{"error", "message", "request_id"}`) is decoded in one
place and callers only ever catch `ApiClientError` (client.errors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from client.transport import HttpClient, Params

__all__ = ["ApiClient"]


class ApiClient(HttpClient):
    """Async API client: `async with ApiClient(address, token) as api: ...`
    (``address``: one server or several, `"a,b,c"`, failed over between;
    ``retry=DEFAULT_RETRY`` retries 429 and 503, see client.retry)."""

    # cluster and jobs: the body only ---------------------------------------
    async def cluster_status(self) -> dict[str, Any]:
        return (await self.get("/v1/cluster/status"))[0]

    async def cluster_peers(self) -> list[dict[str, Any]]:
        return (await self.get("/v1/cluster/peers"))[0]

    async def transfer_leadership(self, to: str | None = None) -> dict[str, Any]:
        body = {"to": to} if to else None
        return (await self.post("/v1/raft/transfer-leadership", body))[0]

    async def remove_peer(self, name: str) -> dict[str, Any]:
        return (await self.delete(f"/v1/cluster/peers/{quote(name, safe='')}"))[0]

    async def list_jobs(self) -> list[dict[str, Any]]:
        return (await self.get("/v1/jobs"))[0]

    async def get_job(self, name: str) -> dict[str, Any]:
        return (await self.get(f"/v1/jobs/{quote(name, safe='')}"))[0]

    async def job_versions(self, name: str) -> list[dict[str, Any]]:
        return (await self.get(f"/v1/jobs/{quote(name, safe='')}/versions"))[0]

    async def submit_job(
        self, spec: dict[str, Any], job_modify_index: int | None = None
    ) -> dict[str, Any]:
        body = dict(spec)
        if job_modify_index is not None:
            body["job_modify_index"] = job_modify_index
        # Submitting the same spec again changes nothing more (a check-and-set would 409).
        return (await self.post("/v1/jobs", body, idempotent=job_modify_index is None))[0]

    async def delete_job(self, name: str) -> dict[str, Any]:
        return (await self.delete(f"/v1/jobs/{quote(name, safe='')}"))[0]

    async def scale_job(
        self,
        name: str,
        count: int,
        group: str | None = None,
        job_modify_index: int | None = None,
    ) -> dict[str, Any]:
        """Set one group's count (``group`` None: the job's only group): a new version."""
        body: dict[str, Any] = {"count": count}
        if group is not None:
            body["group"] = group
        if job_modify_index is not None:
            body["job_modify_index"] = job_modify_index
        path = f"/v1/jobs/{quote(name, safe='')}/scale"
        return (await self.post(path, body, idempotent=job_modify_index is None))[0]

    async def plan_job(self, spec: dict[str, Any]) -> dict[str, Any]:
        """What submitting ``spec`` would change (a dry run: nothing is written)."""
        name = str(spec.get("name") or "")
        return (await self.post(f"/v1/jobs/{quote(name, safe='')}/plan", spec))[0]

    async def revert_job(
        self, name: str, version: int, job_modify_index: int | None = None
    ) -> dict[str, Any]:
        """Resubmit version ``version``'s spec as the job's next version."""
        body: dict[str, Any] = {"version": version}
        if job_modify_index is not None:
            body["job_modify_index"] = job_modify_index
        return (await self.post(f"/v1/jobs/{quote(name, safe='')}/revert", body))[0]

    # deployments ------------------------------------------------------------
    async def list_deployments(self, job: str | None = None) -> list[dict[str, Any]]:
        """Newest first (``job``: that job's only)."""
        params = {"job": job} if job is not None else None
        return (await self.get("/v1/deployments", params=params))[0]

    async def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        return (await self.get(f"/v1/deployments/{quote(deployment_id, safe='')}"))[0]

    async def steer_deployment(self, deployment_id: str, action: str) -> dict[str, Any]:
        """``action``: fail, pause or resume."""
        path = f"/v1/deployments/{quote(deployment_id, safe='')}/{quote(action, safe='')}"
        return (await self.post(path, None))[0]

    # nodes ------------------------------------------------------------------
    async def list_nodes(self) -> list[dict[str, Any]]:
        return (await self.get("/v1/nodes"))[0]

    async def get_node(self, ref: str) -> dict[str, Any]:
        """A node by id or name."""
        return (await self.get(f"/v1/nodes/{quote(ref, safe='')}"))[0]

    async def drain_node(
        self,
        ref: str,
        deadline_seconds: int | None = None,
        *,
        enable: bool = True,
        keep_ineligible: bool = False,
    ) -> dict[str, Any]:
        """Start a drain (the server's default deadline when None), or cancel it."""
        body: dict[str, Any]
        if enable:
            body = {} if deadline_seconds is None else {"deadline_seconds": deadline_seconds}
        else:
            body = {"enable": False, "keep_ineligible": keep_ineligible}
        return (await self.post(f"/v1/nodes/{quote(ref, safe='')}/drain", body))[0]

    async def node_eligibility(self, ref: str, eligible: bool) -> dict[str, Any]:
        path = f"/v1/nodes/{quote(ref, safe='')}/eligibility"
        return (await self.post(path, {"eligible": eligible}, idempotent=True))[0]

    # allocations --------------------------------------------------------------
    async def list_allocations(
        self, job: str | None = None, node: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"job": job, "node": node, "status": status}
        return (await self.get("/v1/allocations", params=params))[0]

    async def get_allocation(self, alloc_id: str) -> dict[str, Any]:
        """An allocation by id or unique prefix (4 characters or more)."""
        return (await self.get(f"/v1/allocations/{quote(alloc_id, safe='')}"))[0]

    async def stop_allocation(self, alloc_id: str) -> dict[str, Any]:
        return (await self.post(f"/v1/allocations/{quote(alloc_id, safe='')}/stop"))[0]

    async def restart_allocation(self, alloc_id: str, task: str | None = None) -> dict[str, Any]:
        """Ask the node to restart a running allocation's tasks (or one) in place."""
        body = {"task": task} if task is not None else {}
        return (await self.post(f"/v1/allocations/{quote(alloc_id, safe='')}/restart", body))[0]

    # logs and metrics -----------------------------------------------------------
    async def logs(
        self,
        alloc: str | None = None,
        *,
        job: str | None = None,
        lines: int | str | None = None,
        stream: str | None = None,
        task: str | None = None,
    ) -> list[dict[str, Any]]:
        """The last lines of an allocation (id or prefix) or of a whole job."""
        path, params = _logs_target(alloc, job, {"lines": lines, "type": stream, "task": task})
        return (await self.get(path, params=params))[0]

    def follow_logs(
        self,
        alloc: str | None = None,
        *,
        job: str | None = None,
        lines: int | str | None = None,
        stream: str | None = None,
        task: str | None = None,
        since: int | None = None,
    ) -> AsyncIterator[tuple[str, Any]]:
        """Live lines (`("log", {...})`, and `error`/`dropped` notices) of an
        allocation or of every allocation of a job, after the last `lines`
        (or, with `since` in unix microseconds, every line after it)."""
        path, params = _logs_target(
            alloc,
            job,
            {"lines": lines, "type": stream, "task": task, "stream": True, "since": since},
        )
        return self.sse(path, params)

    # operator: backups ---------------------------------------------------------
    async def save_snapshot(self) -> bytes:
        """The cluster's state as a backup file (`GET /v1/operator/snapshot`)."""
        data, _ = await self.request("GET", "/v1/operator/snapshot", binary=True, timeout=600.0)
        return bytes(data)

    async def restore_snapshot(self, data: bytes) -> dict[str, Any]:
        """Restore a backup file into the cluster (`PUT /v1/operator/snapshot`)."""
        body, _ = await self.request("PUT", "/v1/operator/snapshot", raw=data, timeout=600.0)
        return dict(body)

    async def metrics(self) -> dict[str, Any]:
        """The cluster snapshot (nodes, jobs, allocations, raft, API rate)."""
        return (await self.get("/v1/metrics"))[0]

    async def metrics_query(
        self,
        metric: str,
        *,
        job: str | None = None,
        node: str | None = None,
        alloc: str | None = None,
        start: str | None = None,
        end: str | None = None,
        step: str | None = None,
    ) -> dict[str, Any]:
        """Time series of `metric` (cpu, memory, disk, ...) for a job, a node,
        an allocation or every node; `start`/`end` as `now`, `-1h30m` (a duration
        before now), unix seconds or RFC 3339."""
        params = {
            "metric": metric,
            "job": job,
            "node": node,
            "alloc": alloc,
            "from": start,
            "to": end,
            "step": step,
        }
        return (await self.get("/v1/metrics/query", params=params))[0]


def _logs_target(alloc: str | None, job: str | None, params: Params) -> tuple[str, Params]:
    """An allocation's logs (id or prefix), else every allocation of `job`."""
    if alloc is not None:
        return f"/v1/logs/{quote(alloc, safe='')}", params
    return "/v1/logs", {**params, "job": job}
