"""A deployment's next step, from the replicated state alone (pure).

The leader's deployments controller (heroctld.controllers.deployments) asks
this for each running, paused or blocked-on-promotion deployment and proposes
what it answers: the counts it sees per group (placed, healthy, unhealthy,
and the canaries' ids) and, for a running one, whether it is done (every
replica of the version healthy: successful) or failed (an allocation of the
version unhealthy, which the agent reports once it missed its
healthy_deadline or failed; or no replica became healthy within the progress
deadline). A canary or blue-green deployment first waits: once every canary
is healthy it is blocked-on-promotion until a user promotes it, or the step
promotes it itself when its groups ask for ``auto_promote``. Nothing is kept
between calls, so a new leader continues where the old one stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.ingress_routing import draining_now
from domain.jobspec.groups import CANARY_STRATEGIES
from domain.scheduler.reconcile import rollout_canaries
from raft.fsm_allocs import TERMINAL

COUNTED = ("placed", "healthy", "unhealthy")
BLOCKED = "blocked-on-promotion"
DRIVEN = ("running", "paused", BLOCKED)


@dataclass(frozen=True)
class DeploymentStep:
    """What to propose: ``setup`` (the strategy and per group canary settings
    taken from the job, once), ``counts`` (None: unchanged), ``status`` (None:
    unchanged; else blocked-on-promotion, successful, failed or cancelled, with
    ``description``) and ``promote`` (auto_promote: every canary is healthy)."""

    counts: dict[str, dict[str, Any]] | None = None
    status: str | None = None
    description: str = ""
    setup: dict[str, Any] | None = None
    promote: bool = False

    @property
    def empty(self) -> bool:
        return (
            self.counts is None
            and self.status is None
            and self.setup is None
            and not (self.promote)
        )


def _unhealthy(alloc: Mapping[str, Any]) -> bool:
    return alloc.get("healthy") is False or alloc.get("status") == "failed"


def deployment_setup(
    deployment: Mapping[str, Any],
    job: Mapping[str, Any],
    allocations: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The strategy of the job's groups and, per group, ``desired_canaries``
    and ``auto_promote``: a canary or blue-green group whose older replicas
    run tries its ``canary`` count first; a first version has none to try,
    nor has a version promoted from the start (an auto_revert's)."""
    version = deployment["version"]
    older = {
        a.get("group")
        for a in allocations
        if a.get("job_version") != version and a.get("desired_status") == "run"
    }
    strategy, groups = "rolling", {}
    reverted = job.get("promoted_version") == version  # an auto_revert: it ran before
    for group in job.get("groups") or ():
        if group["name"] not in deployment["groups"]:
            continue
        update = group.get("update") or {}
        group_strategy = update.get("strategy", "rolling")
        if group_strategy != "rolling":
            strategy = group_strategy
        canaries = 0
        if group_strategy in CANARY_STRATEGIES and group["name"] in older and not reverted:
            canaries = rollout_canaries(group)
        groups[group["name"]] = {
            "desired_canaries": canaries,
            "auto_promote": update.get("auto_promote") is True or group_strategy == "rainbow",
        }

    return {"strategy": strategy, "groups": groups}


def _with_setup(deployment: Mapping[str, Any], setup: Mapping[str, Any]) -> dict[str, Any]:
    groups = {
        name: {**doc, **setup["groups"].get(name, {})} for name, doc in deployment["groups"].items()
    }
    return {**deployment, "strategy": setup["strategy"], "groups": groups}


def waits_for_promotion(deployment: Mapping[str, Any]) -> bool:
    """Canaries to try and not promoted yet."""
    if deployment.get("promoted"):
        return False
    return any(doc.get("desired_canaries", 0) > 0 for doc in deployment["groups"].values())


def group_counts(
    deployment: Mapping[str, Any], allocations: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], Mapping[str, Any] | None]:
    """Per group placed/healthy/unhealthy of the deployment's version (and,
    while it waits for promotion, its canaries: every replica of the version
    then is one; for rainbow, the older versions still running or draining:
    per version their allocations and the connections they hold), and the
    first unhealthy allocation (by id) if any."""
    version = deployment["version"]
    counts: dict[str, dict[str, Any]] = {g: dict.fromkeys(COUNTED, 0) for g in deployment["groups"]}
    waiting = waits_for_promotion(deployment)
    for name, doc in deployment["groups"].items():
        if "canaries" in doc or (waiting and doc.get("desired_canaries", 0) > 0):
            counts[name]["canaries"] = list(doc.get("canaries", ()))
    rainbow = deployment.get("strategy") == "rainbow"
    first_bad: Mapping[str, Any] | None = None
    for alloc in sorted(allocations, key=lambda a: a["id"]):
        group = counts.get(alloc.get("group"))
        if group is not None and rainbow and alloc.get("job_version") != version:
            if draining_now(alloc) or (
                alloc.get("desired_status") == "run" and alloc.get("status") not in TERMINAL
            ):
                older = group.setdefault("draining", {}).setdefault(
                    str(alloc.get("job_version")), {"allocations": 0, "connections": 0}
                )
                older["allocations"] += 1
                older["connections"] += int(alloc.get("connections") or 0)
            continue
        if group is None or alloc.get("job_version") != version:
            continue
        if alloc.get("desired_status") == "run":
            group["placed"] += 1
            if alloc.get("status") == "running" and alloc.get("healthy") is True:
                group["healthy"] += 1
            if waiting and "canaries" in group and alloc["id"] not in group["canaries"]:
                group["canaries"].append(alloc["id"])
        if _unhealthy(alloc):
            group["unhealthy"] += 1
            first_bad = first_bad or alloc
    return counts, first_bad


def next_step(
    deployment: Mapping[str, Any],
    allocations: Iterable[Mapping[str, Any]],
    now_ms: int,
    job: Mapping[str, Any] | None = None,
) -> DeploymentStep:
    """The step for ``deployment`` given the job's allocations at ``now_ms``
    (and the job: its strategy settings, and whether a newer version left a
    deployment blocked on promotion behind)."""
    if deployment["status"] not in DRIVEN:
        return DeploymentStep()
    allocations = list(allocations)
    current = job is not None and job.get("version") == deployment["version"]
    if deployment["status"] == BLOCKED and job is not None and not current:
        description = f"superseded by version {job.get('version')}"
        return DeploymentStep(status="cancelled", description=description)
    setup = None
    unset = any("desired_canaries" not in doc for doc in deployment["groups"].values())
    if job is not None and current and unset:
        setup = deployment_setup(deployment, job, allocations)
        deployment = _with_setup(deployment, setup)
    counts, bad = group_counts(deployment, allocations)
    known: dict[str, dict[str, Any]] = {}
    for name, doc in deployment["groups"].items():
        known[name] = {k: doc.get(k, 0) for k in COUNTED}
        for key in ("canaries", "draining"):
            if key in doc:
                known[name][key] = doc[key]
        if "canaries" in counts[name]:
            known[name]["canaries"] = list(doc.get("canaries", ()))
    changed = counts if counts != known else None
    if deployment["status"] == "paused":
        return DeploymentStep(counts=changed, setup=setup)
    if bad is not None:
        why = "failed" if bad.get("status") == "failed" else "missed its healthy deadline"
        kind = (
            "canary"
            if bad["id"] in counts.get(bad.get("group"), {}).get("canaries", ())
            else "allocation"
        )
        description = f"{kind} {bad['id']} of group {bad.get('group')} {why}"
        return DeploymentStep(changed, "failed", description, setup)
    groups = deployment["groups"]
    if waits_for_promotion(deployment):
        trying = {g: doc for g, doc in groups.items() if doc.get("desired_canaries", 0) > 0}
        ready = all(counts[g]["healthy"] >= doc["desired_canaries"] for g, doc in trying.items())
        if deployment["status"] == BLOCKED:
            auto = ready and all(doc.get("auto_promote") for doc in trying.values())
            return DeploymentStep(changed, setup=setup, promote=auto)
        if ready:
            total = sum(doc["desired_canaries"] for doc in trying.values())
            description = (
                f"{total} canar{'y is' if total == 1 else 'ies are'} healthy: promote to continue"
            )
            return DeploymentStep(changed, BLOCKED, description, setup)
    elif all(counts[g]["healthy"] >= doc.get("desired", 0) for g, doc in groups.items()):
        if any(counts[g].get("draining") for g in groups):
            return DeploymentStep(counts=changed, setup=setup)  # rainbow: older versions drain
        return DeploymentStep(
            changed, "successful", "every replica of the version is healthy", setup
        )
    progressed = any(counts[g]["healthy"] > known[g]["healthy"] for g in groups)
    if not progressed and now_ms > deployment.get("require_progress_by", now_ms):
        seconds = deployment.get("progress_deadline")
        description = f"no replica became healthy within the progress deadline ({seconds}s)"
        return DeploymentStep(changed, "failed", description, setup)
    return DeploymentStep(counts=changed, setup=setup)
