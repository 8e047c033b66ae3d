"""FSM operations on deployments: progress, status changes, reverts.

The leader's deployments controller (heroctld.controllers.deployments)
reports what it sees (`deployment.progress`: per group placed, healthy,
unhealthy) and decides (`deployment.status`: successful, failed); users pause,
resume and fail through the same operation. Everything a decision implies
happens in its command: a successful deployment marks its version stable, a
failed one with `auto_revert` resubmits the job's last stable version. So a
new leader finds the state as the old one left it and resumes from there.
"""

from __future__ import annotations

from typing import Any

from raft import deployment_docs
from raft.changes import Changes
from raft.fsm_jobs import job_upsert, job_versions
from raft.fsm_results import fail, ok
from raft.state import State

BLOCKED = "blocked-on-promotion"  # as domain.scheduler.deployment (raft cannot import domain)
# Driven by the controller: deployment_docs.ACTIVE and the deployments waiting
# for a promote (which the state's active index does not hold yet).
DRIVEN = (*deployment_docs.ACTIVE, BLOCKED)
# status asked for -> the statuses it may come from
TRANSITIONS = {
    "paused": ("running",),
    "running": ("paused",),
    "failed": ("running", "paused", BLOCKED),
    "successful": ("running",),
    BLOCKED: ("running",),
    "cancelled": (BLOCKED,),  # the controller: a newer version left it waiting
}
ACTIONS = {
    "paused": "pause",
    "running": "resume",
    "failed": "fail",
    "successful": "succeed",
    BLOCKED: "block",
    "cancelled": "cancel",
}
COUNTED = ("placed", "healthy", "unhealthy")
SETUP_KEYS = {"desired_canaries": int, "auto_promote": bool}


def _found(state: State, cmd: dict[str, Any]) -> dict[str, Any]:
    doc = state.table(deployment_docs.TABLE).get(cmd.get("id"))
    if doc is None:
        return fail(404, "deployment_not_found", f"deployment '{cmd.get('id')}' does not exist")
    return doc


def status_refusal(doc: dict[str, Any], status: Any) -> dict[str, Any] | None:
    """Why ``doc`` cannot move to ``status`` now, or None (the API asks too,
    so a refused request costs no raft entry)."""
    if status not in TRANSITIONS:
        return fail(400, "invalid_field", f"status: must be one of {', '.join(TRANSITIONS)}")
    if doc["status"] not in TRANSITIONS[status]:
        return fail(
            409,
            "deployment_status",
            f"deployment '{doc['id']}' is {doc['status']}: cannot {ACTIONS[status]} it",
        )
    return None


def _draining(value: dict[str, Any]) -> dict[str, dict[str, int]]:
    """A rainbow group's older versions still draining: version ->
    {allocations, connections} (what the controller counted)."""
    out = {}
    for version, row in value.items():
        if isinstance(version, str) and version.isdigit() and isinstance(row, dict):
            out[version] = {
                key: n
                for key in ("allocations", "connections")
                if isinstance(n := row.get(key), int) and not isinstance(n, bool) and n >= 0
            }
    return out


def deployment_progress(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """The counts the controller saw; healthy replicas moving up push the
    progress deadline back (as Nomad's deployment watcher does)."""
    doc = _found(state, cmd)
    if doc.get("ok") is False:
        return doc
    if doc["status"] not in DRIVEN:
        return fail(409, "deployment_status", f"deployment '{doc['id']}' is {doc['status']}")
    seen = cmd.get("groups")
    if not isinstance(seen, dict):
        return fail(400, "invalid_field", "groups: must be an object")
    setup = cmd.get("setup") if isinstance(cmd.get("setup"), dict) else {}
    set_groups = setup.get("groups") if isinstance(setup.get("groups"), dict) else {}
    ts = cmd.get("ts", 0)
    groups, progressed = {}, False
    for name, group in doc["groups"].items():
        counts = seen.get(name) if isinstance(seen.get(name), dict) else {}
        new = dict(group)
        for key in COUNTED:
            value = counts.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                new[key] = value
        canaries = counts.get("canaries")
        if isinstance(canaries, list) and all(isinstance(c, str) for c in canaries):
            new["canaries"] = list(canaries)
        draining = counts.get("draining")
        if isinstance(draining, dict):
            new["draining"] = _draining(draining)
        elif "draining" in new:
            del new["draining"]
        settings = set_groups.get(name) if isinstance(set_groups.get(name), dict) else {}
        for key, kind in SETUP_KEYS.items():
            value = settings.get(key)
            if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
                new[key] = value
        progressed = progressed or new["healthy"] > group["healthy"]
        groups[name] = new
    new_doc = dict(doc, groups=groups, modify_time=ts)
    if isinstance(setup.get("strategy"), str):
        new_doc["strategy"] = setup["strategy"]
    if progressed and doc["status"] == "running":
        new_doc["require_progress_by"] = ts + doc["progress_deadline"] * 1000
    if new_doc != doc:
        deployment_docs.put(state, changes, new_doc, index)
    return ok(deployment=new_doc)


def _last_stable(state: State, job: str, failed_version: int) -> dict[str, Any] | None:
    for version in job_versions(state, job):
        if version.get("stable") is True and version.get("version") != failed_version:
            return version
    return None


def _mark_stable(state: State, changes: Changes, doc: dict[str, Any], index: int) -> None:
    jobs = state.table("jobs")
    job = jobs.get(doc["job"])
    if job is None or job.get("version") != doc["version"] or job.get("stable") is True:
        return
    changes.wrote("jobs", job["name"], job)
    jobs[job["name"]] = dict(job, stable=True, modify_index=index)
    state.touch("jobs", index)


def deployment_status(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """pause, resume, fail (a user or the controller) and succeed (the controller)."""
    doc = _found(state, cmd)
    if doc.get("ok") is False:
        return doc
    status = cmd.get("status")
    refused = status_refusal(doc, status)
    if refused is not None:
        return refused
    ts = cmd.get("ts", 0)
    default = {
        "paused": "deployment is paused",
        "running": "deployment is running",
        "failed": "deployment failed",
        "successful": "deployment completed successfully",
        BLOCKED: "deployment is waiting for promotion",
        "cancelled": "deployment cancelled",
    }[status]
    description = str(cmd.get("description") or default)
    new_doc = dict(doc, status=status, status_description=description, modify_time=ts)
    if status == "running":  # resumed: the deadline counts from now
        new_doc["require_progress_by"] = ts + doc["progress_deadline"] * 1000
    result: dict[str, Any] = {}
    if status == "failed" and not doc.get("auto_revert"):
        new_doc["status_description"] = f"{description}; the deployment halted"
    if status == "failed" and doc.get("auto_revert"):
        stable = _last_stable(state, doc["job"], doc["version"])
        job = state.table("jobs").get(doc["job"])
        if stable is None or job is None or job.get("version") != doc["version"]:
            new_doc["status_description"] = (
                f"{description}; the deployment halted: no stable version to revert to"
            )
        else:
            new_doc["status_description"] = (
                f"{description}; rolling back to version {stable['version']}"
            )
            new_doc["reverted_to"] = stable["version"]
    deployment_docs.put(state, changes, new_doc, index)
    if "reverted_to" in new_doc:
        reverted = job_upsert(state, {"job": _spec_of(stable), "ts": ts}, index, changes)  # type: ignore[arg-type]
        if reverted.get("ok") is False:  # e.g. its ingress claimed since: halt instead
            why = str(reverted.get("message") or "refused")
            new_doc = dict(
                new_doc, status_description=f"{description}; the deployment halted: revert {why}"
            )
            new_doc.pop("reverted_to")
            deployment_docs.put(state, changes, new_doc, index)
        else:
            new_doc = dict(new_doc, revert_version=reverted["job"]["version"])
            deployment_docs.put(state, changes, new_doc, index)
            # The stable version ran before: nothing to try first, its
            # canaries (if any) are not placed (domain.scheduler.reconcile).
            reverted["job"]["promoted_version"] = reverted["job"]["version"]
            result["job"] = reverted["job"]
    if status == "successful":
        _mark_stable(state, changes, new_doc, index)
    state.changed_jobs.add(doc["job"])  # a pause or a failure holds its rollout
    return ok(deployment=state.table(deployment_docs.TABLE)[doc["id"]], **result)


def promote_refusal(doc: dict[str, Any], job: dict[str, Any] | None) -> dict[str, Any] | None:
    """Why ``doc`` cannot be promoted now, or None: only a deployment blocked
    on promotion of the job's current version can (the API asks too)."""
    if doc["status"] != BLOCKED:
        return fail(
            409,
            "deployment_status",
            f"deployment '{doc['id']}' is {doc['status']}: only a deployment "
            f"{BLOCKED} can be promoted",
        )
    if job is None or job.get("version") != doc["version"]:
        return fail(
            409, "deployment_status", f"deployment '{doc['id']}' is of a version the job left"
        )
    return None


def deployment_promote(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Promote a deployment blocked on promotion (a user, or the controller for
    ``auto_promote``): it runs again, and the job records ``promoted_version``,
    which tells the scheduler to roll the rest (canary) or stop the old set
    (blue-green). The progress deadline counts from now."""
    doc = _found(state, cmd)
    if doc.get("ok") is False:
        return doc
    refused = promote_refusal(doc, state.table("jobs").get(doc["job"]))
    if refused is not None:
        return refused
    ts = cmd.get("ts", 0)
    description = str(cmd.get("description") or "deployment promoted")
    new_doc = dict(
        doc,
        status="running",
        promoted=True,
        status_description=description,
        modify_time=ts,
        require_progress_by=ts + doc["progress_deadline"] * 1000,
    )
    deployment_docs.put(state, changes, new_doc, index)
    jobs = state.table("jobs")
    job = jobs[doc["job"]]
    changes.wrote("jobs", job["name"], job)
    jobs[job["name"]] = dict(job, promoted_version=doc["version"], modify_index=index)
    state.touch("jobs", index)
    state.changed_jobs.add(doc["job"])
    return ok(deployment=new_doc)


def _spec_of(version: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in version.items() if k not in ("stable", "promoted_version")}


def job_revert(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """Resubmit a stored version's spec as the job's next version."""
    name, wanted = cmd.get("name"), cmd.get("version")
    if not isinstance(wanted, int) or isinstance(wanted, bool):
        return fail(400, "invalid_field", "version: must be an integer")
    versions = job_versions(state, name) if isinstance(name, str) else []
    if not versions:
        return fail(404, "job_not_found", f"job '{name}' does not exist")
    found = next((v for v in versions if v.get("version") == wanted), None)
    if found is None:
        known = ", ".join(str(v.get("version")) for v in versions)
        return fail(
            409, "version_not_found", f"job '{name}' has no version {wanted} (it has: {known})"
        )
    result = job_upsert(
        state,
        {"job": _spec_of(found), "cas": cmd.get("cas"), "ts": cmd.get("ts", 0)},
        index,
        changes,
    )
    if result.get("ok"):
        result["reverted_to"] = wanted
    return result
