"""A deployment's next step, from the replicated state alone (pure).

The leader's deployments controller (heroctld.controllers.deployments) asks
this for each running or paused deployment and proposes what it answers:
the counts it sees per group (placed, healthy, unhealthy) and, for a running
one, whether it is done (every replica of the version healthy: successful)
or failed (an allocation of the version unhealthy, which the agent reports
once it missed its healthy_deadline or failed; or no replica became healthy
within the progress deadline). Nothing is kept between calls, so a new
leader continues where the old one stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COUNTED = ("placed", "healthy", "unhealthy")


@dataclass(frozen=True)
class DeploymentStep:
    """What to propose: ``counts`` (None: unchanged) and ``status`` (None:
    unchanged; else successful or failed, with ``description``)."""

    counts: dict[str, dict[str, int]] | None = None
    status: str | None = None
    description: str = ""

    @property
    def empty(self) -> bool:
        return self.counts is None and self.status is None


def _unhealthy(alloc: Mapping[str, Any]) -> bool:
    return alloc.get("healthy") is False or alloc.get("status") == "failed"


def group_counts(
    deployment: Mapping[str, Any], allocations: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, dict[str, int]], Mapping[str, Any] | None]:
    """Per group placed/healthy/unhealthy of the deployment's version, and the
    first unhealthy allocation (by id) if any."""
    version = deployment["version"]
    counts = {g: dict.fromkeys(COUNTED, 0) for g in deployment["groups"]}
    first_bad: Mapping[str, Any] | None = None
    for alloc in sorted(allocations, key=lambda a: a["id"]):
        group = counts.get(alloc.get("group"))
        if group is None or alloc.get("job_version") != version:
            continue
        if alloc.get("desired_status") == "run":
            group["placed"] += 1
            if alloc.get("status") == "running" and alloc.get("healthy") is True:
                group["healthy"] += 1
        if _unhealthy(alloc):
            group["unhealthy"] += 1
            first_bad = first_bad or alloc
    return counts, first_bad


def next_step(
    deployment: Mapping[str, Any],
    allocations: Iterable[Mapping[str, Any]],
    now_ms: int,
) -> DeploymentStep:
    """The step for ``deployment`` given the job's allocations at ``now_ms``."""
    if deployment["status"] not in ("running", "paused"):
        return DeploymentStep()
    counts, bad = group_counts(deployment, allocations)
    known = {g: {k: doc.get(k, 0) for k in COUNTED} for g, doc in deployment["groups"].items()}
    changed = counts if counts != known else None
    if deployment["status"] == "paused":
        return DeploymentStep(counts=changed)
    if bad is not None:
        why = "failed" if bad.get("status") == "failed" else "missed its healthy deadline"
        description = f"allocation {bad['id']} of group {bad.get('group')} {why}"
        return DeploymentStep(changed, "failed", description)
    groups = deployment["groups"]
    if all(counts[g]["healthy"] >= doc.get("desired", 0) for g, doc in groups.items()):
        return DeploymentStep(changed, "successful", "every replica of the version is healthy")
    progressed = any(counts[g]["healthy"] > known[g]["healthy"] for g in groups)
    if not progressed and now_ms > deployment.get("require_progress_by", now_ms):
        seconds = deployment.get("progress_deadline")
        description = f"no replica became healthy within the progress deadline ({seconds}s)"
        return DeploymentStep(changed, "failed", description)
    return DeploymentStep(counts=changed)
