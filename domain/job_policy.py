"""What a job may ask of the nodes, as its submitter's policies grant it.

A job's tasks run on every node, so ``jobs: write`` alone must not be root
there: which drivers a token's jobs may use, whether their tasks may leave the
sandbox, which host directories they may mount and which secrets they may
reference are checked at submit, against the same ``jobs`` rule::

    "jobs": {"write": true, "drivers": ["docker"], "privileged": false, "host_volumes": []}

``"jobs": "write"`` is that object with its defaults (the docker driver, no
privilege, no host directory). ``privileged: true`` lets a job's docker tasks
set ``privileged`` and its exec tasks run as a ``user`` other than ``nobody``;
``host_volumes`` lists host paths a docker task may mount, each with what is
below it. Several policies add up (drivers and host paths are unions,
``privileged`` is granted by any); ``deny`` on ``jobs`` still wins over all.
Secrets need ``read`` on each name a task references, in its ``secrets``
and its ``registry_auth.password_secret``
(:meth:`domain.policy.Permissions.may_secret`). Pure: the API asks
:func:`job_refusals` and answers 403 with what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.jobspec import JobSpecError, parse_secret_ref
from domain.jobspec.privileges import DEFAULT_EXEC_USER, host_path
from domain.jobspec.tasks import DRIVERS

__all__ = [
    "DEFAULT_DRIVERS",
    "JobGrants",
    "job_refusals",
    "jobs_rule_access",
    "jobs_rule_grants",
    "validate_jobs_rule",
]

DEFAULT_DRIVERS = ("docker",)
RULE_KEYS = ("write", "drivers", "privileged", "host_volumes")


@dataclass(frozen=True)
class JobGrants:
    """What a token's jobs may ask of the nodes (nothing by default)."""

    drivers: frozenset[str] = frozenset()
    privileged: bool = False
    host_volumes: tuple[str, ...] = ()

    def __or__(self, other: JobGrants) -> JobGrants:
        return JobGrants(
            self.drivers | other.drivers,
            self.privileged or other.privileged,
            tuple(sorted(set(self.host_volumes) | set(other.host_volumes))),
        )

    def mounts(self, source: str) -> bool:
        """Whether host path ``source`` is one of the granted paths or below one."""
        return any(
            source == granted or source.startswith(granted.rstrip("/") + "/")
            for granted in self.host_volumes
        )


def validate_jobs_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """The object form of a ``jobs`` rule, checked and with its defaults;
    ValueError says what is wrong."""
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise ValueError(f"rules.jobs: unknown key '{unknown[0]}' (known: {', '.join(RULE_KEYS)})")
    write = rule.get("write", True)
    privileged = rule.get("privileged", False)
    drivers = rule.get("drivers", list(DEFAULT_DRIVERS))
    paths = rule.get("host_volumes", [])
    if not isinstance(write, bool) or not isinstance(privileged, bool):
        raise ValueError("rules.jobs: write and privileged must be true or false")
    if not isinstance(drivers, list) or any(d not in DRIVERS for d in drivers):
        raise ValueError(f"rules.jobs.drivers must be a list of {', '.join(DRIVERS)}")
    if not isinstance(paths, list):
        raise ValueError("rules.jobs.host_volumes must be a list of absolute paths")
    try:
        volumes = sorted({host_path(p, "rules.jobs.host_volumes") for p in paths})
    except JobSpecError as e:
        raise ValueError(str(e)) from None
    if not write and (set(rule) - {"write"}):
        raise ValueError("rules.jobs: drivers, privileged and host_volumes need write: true")
    return {
        "write": write,
        "drivers": sorted(set(drivers)),
        "privileged": privileged,
        "host_volumes": volumes,
    }


def jobs_rule_access(rule: Any) -> Any:
    """The access a ``jobs`` rule gives (its object form: write or read)."""
    if isinstance(rule, dict):
        return "write" if rule.get("write", True) else "read"
    return rule


def jobs_rule_grants(rule: Any) -> JobGrants:
    """What one valid ``jobs`` rule grants beyond the access itself."""
    if rule == "write":
        return JobGrants(frozenset(DEFAULT_DRIVERS))
    if not isinstance(rule, dict) or not rule.get("write", True):
        return JobGrants()
    return JobGrants(
        frozenset(rule.get("drivers", DEFAULT_DRIVERS)),
        bool(rule.get("privileged", False)),
        tuple(rule.get("host_volumes", ())),
    )


def job_refusals(
    job: Mapping[str, Any], grants: JobGrants, may_read_secret: Callable[[str], bool]
) -> list[str]:
    """What a normalized ``job`` asks that ``grants`` (and the secrets its
    submitter may read) do not allow, each naming the field; empty: nothing."""
    out: list[str] = []
    for gi, group in enumerate(job.get("groups") or ()):
        for ti, task in enumerate(group.get("tasks") or ()):
            path = f"groups[{gi}].tasks[{ti}]"
            driver = task.get("driver", "docker")
            if driver not in grants.drivers:
                out.append(f"the {driver} driver is not granted ({path}.driver)")
            for var, ref in sorted((task.get("secrets") or {}).items()):
                name = parse_secret_ref(ref)[0]
                if not may_read_secret(name):
                    out.append(f"secret '{name}' is not readable ({path}.secrets.{var})")
            auth = task.get("registry_auth")
            if auth:
                name = parse_secret_ref(auth["password_secret"])[0]
                if not may_read_secret(name):
                    field = f"{path}.registry_auth.password_secret"
                    out.append(f"secret '{name}' is not readable ({field})")
            user = task.get("user") or DEFAULT_EXEC_USER
            if task.get("privileged") and not grants.privileged:
                out.append(f"privileged is not granted ({path}.privileged)")
            if driver == "exec" and user != DEFAULT_EXEC_USER and not grants.privileged:
                out.append(f"exec user '{user}' needs privileged ({path}.user)")
            for vi, volume in enumerate(task.get("volumes") or ()):
                if not grants.mounts(volume["source"]):
                    source = volume["source"]
                    out.append(f"host path '{source}' is not granted ({path}.volumes[{vi}].source)")
    return out
