"""Who may do what: policy rules, their merge, and the route -> permission table.

Pure (no I/O, no state): the middleware asks `requirement(method, route)` what
a request needs and `Permissions.allows(...)` whether an identity has it;
handlers ask `Permissions.secret_access(name)` for per-name secret checks.

A policy's rules map a resource to an access: `deny`, `read` or `write`
(`write` includes `read`). `secrets` also takes `list` (names only) and
per-name patterns with `*`: `{"db_*": "read", "*": "list"}`; a bare string is
the same as `{"*": <access>}`. Merging several policies: for one resource
(or one secret pattern) `deny` wins over everything, otherwise the highest
access; for a secret name the most specific matching pattern decides (exact
names first, then the pattern with the most literal characters).
`jobs` also takes an object saying what the jobs of a token may ask of the
nodes (drivers, privilege, host paths: :mod:`domain.job_policy`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from domain.job_policy import (
    JobGrants,
    job_refusals,
    jobs_rule_access,
    jobs_rule_grants,
    validate_jobs_rule,
)

RESOURCES = (
    "jobs",
    "allocations",
    "nodes",
    "secrets",
    "cluster",
    "acl",
    "webhooks",
    "events",  # the event stream: names, ids and statuses only, never values
    "metrics",
    "logs",
    "ingress",
)
ACCESS = ("deny", "read", "write")
SECRET_ACCESS = ("deny", "list", "read", "write")
_RANK = {"none": 0, "list": 1, "read": 2, "write": 3}
PATTERN_RE = re.compile(r"^[A-Za-z0-9_.*-]{1,128}$")
MAX_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class PolicyError(ValueError):
    pass


def validate_rules(rules: Any) -> dict[str, Any]:
    """Check and normalize a policy's rules (secrets become a pattern map)."""
    if not isinstance(rules, dict):
        raise PolicyError("rules must be an object mapping a resource to an access")
    out: dict[str, Any] = {}
    for resource, access in rules.items():
        if resource not in RESOURCES:
            raise PolicyError(f"unknown resource '{resource}' (known: {', '.join(RESOURCES)})")
        if resource == "secrets":
            if isinstance(access, str):
                access = {"*": access}
            if not isinstance(access, dict) or not access:
                raise PolicyError("rules.secrets must be an access or a {pattern: access} map")
            patterns: dict[str, str] = {}
            for pattern, level in access.items():
                if not isinstance(pattern, str) or not PATTERN_RE.fullmatch(pattern):
                    raise PolicyError(
                        f"secret pattern {pattern!r} must be 1-128 of [A-Za-z0-9_.-] and '*'"
                    )
                if level not in SECRET_ACCESS:
                    raise PolicyError(
                        f"access for secrets '{pattern}' must be one of {', '.join(SECRET_ACCESS)}"
                    )
                patterns[pattern] = level
            out[resource] = patterns
        elif resource == "jobs" and isinstance(access, dict):
            try:
                out[resource] = validate_jobs_rule(access)
            except ValueError as e:
                raise PolicyError(str(e)) from None
        else:
            if access not in ACCESS:
                raise PolicyError(f"access for '{resource}' must be one of {', '.join(ACCESS)}")
            out[resource] = access
    return out


def _merge(a: str | None, b: str) -> str:
    if a is None:
        return b
    if "deny" in (a, b):
        return "deny"
    return a if _RANK[a] >= _RANK[b] else b


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def _specificity(pattern: str) -> tuple[int, int]:
    return (0 if "*" in pattern else 1, len(pattern.replace("*", "")))


@dataclass(frozen=True)
class Permissions:
    """The merged rules of an identity's policies (management allows everything)."""

    management: bool = False
    resources: dict[str, str] = field(default_factory=dict)
    # (specificity, pattern, regex, access), most specific first
    secret_rules: tuple[tuple[tuple[int, int], str, re.Pattern[str], str], ...] = ()
    job_grants: JobGrants = JobGrants()

    @classmethod
    def compile(cls, rule_sets: list[dict[str, Any]], management: bool = False) -> Permissions:
        resources: dict[str, str] = {}
        patterns: dict[str, str] = {}
        grants = JobGrants()
        for rules in rule_sets:
            if not isinstance(rules, dict):
                continue
            for resource, access in rules.items():
                if resource == "secrets":
                    if isinstance(access, str):
                        access = {"*": access}
                    if not isinstance(access, dict):
                        continue
                    for pattern, level in access.items():
                        if isinstance(pattern, str) and level in SECRET_ACCESS:
                            patterns[pattern] = _merge(patterns.get(pattern), level)
                    continue
                if resource == "jobs":
                    grants |= jobs_rule_grants(access)
                    access = jobs_rule_access(access)
                if resource in RESOURCES and access in ACCESS:
                    resources[resource] = _merge(resources.get(resource), access)
        secret_rules = tuple(
            sorted(
                ((_specificity(p), p, _pattern_regex(p), a) for p, a in patterns.items()),
                key=lambda r: r[0],
                reverse=True,
            )
        )
        if resources.get("jobs") != "write":
            grants = JobGrants()  # denied (or read only): nothing to grant
        return cls(management, resources, secret_rules, grants)

    def allows(self, resource: str, access: str) -> bool:
        """May this identity use `access` on `resource` at all (any secret name)?"""
        if self.management:
            return True
        if resource == "secrets":
            need = _RANK[access]
            return any(a != "deny" and _RANK[a] >= need for *_, a in self.secret_rules)
        have = self.resources.get(resource)
        return have is not None and have != "deny" and _RANK[have] >= _RANK[access]

    def secret_access(self, name: str) -> str:
        """`none`, `deny`, `list`, `read` or `write` for one secret name."""
        if self.management:
            return "write"
        best: tuple[int, int] | None = None
        result: str | None = None
        for spec, _pattern, regex, access in self.secret_rules:
            if best is not None and spec < best:
                break
            if regex.fullmatch(name):
                best = spec
                result = _merge(result, access)
        return result or "none"

    def may_secret(self, name: str, access: str) -> bool:
        have = self.secret_access(name)
        return have not in ("none", "deny") and _RANK[have] >= _RANK[access]

    def job_refusals(self, job: dict[str, Any]) -> list[str]:
        """What a normalized job asks that this identity may not grant it
        (:func:`domain.job_policy.job_refusals`); management: nothing."""
        if self.management:
            return []
        return job_refusals(job, self.job_grants, lambda name: self.may_secret(name, "read"))


# --- which requests need what ------------------------------------------------------
PUBLIC = "public"  # no token
AUTHENTICATED = "authenticated"  # any valid identity
MANAGEMENT = "management"  # management identities only


@dataclass(frozen=True)
class Requirement:
    kind: str  # PUBLIC, AUTHENTICATED, MANAGEMENT or "resource"
    resource: str | None = None
    access: str | None = None


_PUBLIC_ROUTES = {
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/acl/bootstrap"),
    ("GET", "/v1/cluster/ca"),  # the public CA certificate, what a client pins
    ("GET", "/v1/openapi.json"),  # the API's description: routes, nothing of the state
}
_PUBLIC_PREFIXES = ("/v1/health/",)
# Membership changes: management only (and the joining server's proof, api.routes_cluster).
_MANAGEMENT_ROUTES = {
    ("POST", "/v1/cluster/peers"),
    ("DELETE", "/v1/cluster/peers/{name}"),
}
# What a node credential may call (each handler checks it is about that node).
NODE_ROUTES = frozenset(
    {
        ("POST", "/v1/nodes/register"),
        ("POST", "/v1/nodes/{id}/heartbeat"),
        ("GET", "/v1/nodes/{id}/allocations"),
        ("GET", "/v1/nodes/{id}/ingress"),
        ("POST", "/v1/nodes/{id}/ingress/applied"),
        ("POST", "/v1/allocations/status"),
        ("GET", "/v1/allocations/{id}/secrets"),
    }
)
# What a joining server's credential (made for any server) may call.
JOIN_ROUTES = frozenset({("POST", "/v1/cluster/peers")})
_SELF_ROUTES = {
    ("GET", "/v1/acl/tokens/self"),
    ("POST", "/v1/auth/logout"),
}
# Route prefix -> resource. A prefix matches itself and anything below it.
ROUTE_RESOURCES: tuple[tuple[str, str], ...] = (
    ("/v1/jobs", "jobs"),
    ("/v1/deployments", "jobs"),
    ("/v1/evaluations", "jobs"),
    ("/v1/allocations", "allocations"),
    ("/v1/nodes", "nodes"),
    ("/v1/secrets", "secrets"),
    ("/v1/cluster", "cluster"),
    ("/v1/raft", "cluster"),
    ("/v1/acl", "acl"),
    ("/v1/webhooks", "webhooks"),
    ("/v1/events", "events"),
    ("/v1/metrics", "metrics"),
    ("/v1/logs", "logs"),
    ("/v1/ingress", "ingress"),
)
_READ_METHODS = ("GET", "HEAD")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


@functools.lru_cache(maxsize=4096)
def requirement(method: str, path: str) -> Requirement:
    """What a request needs; `path` is the matched route's template when known.

    Reads (GET, HEAD) need `read`, everything else `write`, except on secrets
    where a read only needs `list` here and the handler checks the name.
    Anything not in the table needs a management identity (fail closed).
    """
    method = method.upper()
    if (method, path) in _PUBLIC_ROUTES:
        return Requirement(PUBLIC)
    if method in _READ_METHODS and any(path.startswith(p) for p in _PUBLIC_PREFIXES):
        return Requirement(PUBLIC)
    if (method, path) in _SELF_ROUTES:
        return Requirement(AUTHENTICATED)
    if (method, path) in _MANAGEMENT_ROUTES:
        return Requirement(MANAGEMENT)
    for prefix, resource in ROUTE_RESOURCES:
        if _under(path, prefix):
            read = method in _READ_METHODS
            if resource == "secrets":
                return Requirement("resource", resource, "list" if read else "write")
            return Requirement("resource", resource, "read" if read else "write")
    return Requirement(MANAGEMENT)
