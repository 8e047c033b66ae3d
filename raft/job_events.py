"""Job events, derived from what a command changed (raft.event_derivation).

A job's own row says `job.submitted` (every accepted version) or, deleted,
`job.updated` with status `deleted`. Its status is derived from its
allocations and its placement status, and re-evaluated for every job whose
row, placement status or allocations a command changed: `job.updated` when
the status (pending, running, dead) or the number of unplaceable groups
moved, `job.failed` when the rolling update of its latest version halted,
`job.deployed` when every replica of that version runs healthy.

A deployment that failed says `job.failed` with the version it failed and,
when it rolled back, the version it reverted to (`deployment_events`).

`event_marks` remembers per job what was announced (row `job:<name>`:
status, unplaced, failed and deployed versions), so each is said once.
"""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.fsm_events import MARKS, Derived
from raft.state import State


def job_row_events(state: State, changes: Changes) -> Derived:
    """`job.submitted` per written job, `job.updated` (deleted) per deleted one."""
    out: Derived = []
    jobs = state.table("jobs")
    for name, (before, _) in changes.rows("jobs").items():
        job = jobs.get(name)
        if job is None:
            out.append(("job.updated", {"job": name, "status": "deleted"}))
            continue
        if before is not None and before.get("version") == job.get("version"):
            continue  # the same version marked stable: nothing was submitted
        data = {
            "job": name,
            "version": job.get("version"),
            "type": job.get("type", "service"),
            "created": before is None,
        }
        out.append(("job.submitted", data))
    return out


def _concerned(state: State, changes: Changes) -> set[str]:
    """The jobs whose status a command may have moved: those whose row or
    placement status it wrote, and those of the allocations it wrote (not of
    the ones it forgot: alloc.gc only drops what was stopped and announced)."""
    written = changes.tables
    names = set(written.get("jobs", ()))
    names.update(written.get("job_status", ()))
    allocs = state.table("allocations")
    for alloc_id in written.get("allocations", ()):
        doc = allocs.get(alloc_id)
        if doc is not None:
            names.add(doc["job"])
    return names


def _job_state(state: State, name: str) -> str:
    """pending (nothing runs yet), running (something runs) or dead (all stopped)."""
    allocs = state.allocs_of(job=name)
    if any(a["status"] == "running" and a["desired_status"] == "run" for a in allocs):
        return "running"
    if allocs and all(
        a["desired_status"] == "stop" or a["status"] in ("complete", "failed", "lost")
        for a in allocs
    ):
        return "dead"
    return "pending"


def _deployed(state: State, job: dict[str, Any]) -> int | None:
    """How many replicas, if every replica of the job's latest version runs healthy."""
    if job.get("type", "service") != "service":
        return None
    version = job.get("version")
    wanted: dict[str, int] = {}
    for g in job.get("groups") or ():
        if isinstance(g, dict) and isinstance(g.get("count", 1), int):
            wanted[g.get("name")] = g.get("count", 1)
    if not wanted or sum(wanted.values()) == 0:
        return None
    if any(
        d.get("version") == version and d.get("status") == "blocked-on-promotion"
        for d in state.deployments_of(job["name"])
    ):
        return None  # blue-green: the new set is up, the switch waits for promote
    have: dict[str, int] = {}
    for a in state.allocs_of(job=job["name"]):
        if a["desired_status"] != "run" or a.get("job_version") != version:
            continue
        if a["status"] != "running" or a.get("healthy") is not True:
            return None
        have[a["group"]] = have.get(a["group"], 0) + 1
    if any(have.get(g, 0) < n for g, n in wanted.items()):
        return None
    return sum(have.values())


def job_status_events(state: State, changes: Changes) -> Derived:
    """Status changes, deployed, failed and unplaceable for the jobs concerned."""
    out: Derived = []
    names = _concerned(state, changes)
    jobs, marks, statuses = state.table("jobs"), state.table(MARKS), state.table("job_status")
    for name in sorted(names):
        job = jobs.get(name)
        key = f"job:{name}"
        mark = marks.get(key) or {}
        if job is None:  # deleted: its marks go with it
            marks.pop(key, None)
            continue
        version = job.get("version")
        new = dict(mark)
        status = _job_state(state, name)
        st = statuses.get(name) or {}
        failures = len(st.get("failures") or ())
        moved = "status" in mark and status != mark["status"]
        if moved or failures != mark.get("unplaced", 0):
            data = {"job": name, "version": version, "status": status}
            data["previous_status"] = mark.get("status")
            data["placement_failures"] = failures
            out.append(("job.updated", data))
        new.update(status=status, unplaced=failures)
        halted = st.get("halted") or {}
        if (
            halted
            and st.get("job_version") == version
            and mark.get("failed") != version
            and not any(d["version"] == version for d in state.deployments_of(name))
        ):  # a version with a deployment fails with it (deployment_events)
            reasons = [f"{g}: {r}" for g, r in sorted(halted.items())]
            out.append(
                ("job.failed", {"job": name, "version": version, "reason": "; ".join(reasons)})
            )
            new["failed"] = version
        count = _deployed(state, job)
        if count is not None and mark.get("deployed") != version:
            out.append(("job.deployed", {"job": name, "version": version, "allocations": count}))
            new["deployed"] = version
        if new != mark:
            marks[key] = new
    return out


def deployment_events(state: State, changes: Changes) -> Derived:
    """`job.failed` when a deployment failed: `{job, version, reason}` and,
    when it rolled back, `reverted_to` (the stable version) and
    `revert_version` (the new version with its spec)."""
    out: Derived = []
    table, marks = state.table("deployments"), state.table(MARKS)
    for dep_id, (old, _) in changes.rows("deployments").items():
        new = table.get(dep_id)
        if new is None or new["status"] != "failed":
            continue
        if old is not None and old["status"] == "failed":
            continue
        data = {
            "job": new["job"],
            "version": new["version"],
            "reason": new.get("status_description"),
            "deployment": dep_id,
        }
        if "reverted_to" in new:
            data.update(reverted_to=new["reverted_to"], revert_version=new.get("revert_version"))
        out.append(("job.failed", data))
        key = f"job:{new['job']}"
        if key in marks or new["job"] in state.table("jobs"):
            marks[key] = dict(marks.get(key) or {}, failed=new["version"])
    return out
