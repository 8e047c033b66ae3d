"""FSM operations on ingress: the domains the cluster serves.

A domain is declared either in a job spec (a group's `ingress` entries: the
job owns those host+path pairs) or through the API (`ingress` table: a host
with routes to any job's group and port, for hosts no job spec owns). Every
host+path has one owner: a second claim is refused here, in the log's
order, so two racing submits cannot both win (409 `conflict` naming the
owner). A manual certificate's key arrives sealed by the server that took
the request (like a secret): the log holds ciphertext only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from raft.changes import Changes
from raft.fsm_results import fail, ok
from raft.state import State

TLS_MODES = ("acme", "off", "manual")


def job_claims(job: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(host, path, route) of every ingress entry of a (normalized) job."""
    for group in job.get("groups") or []:
        for entry in group.get("ingress") or []:
            route = {
                "path": entry["path"],
                "job": job["name"],
                "group": group["name"],
                "port": entry["port"],
            }
            yield entry["host"], entry["path"], dict(route, tls=entry.get("tls", "acme"))


def owner_of(state: State, host: str, path: str, *, skip: str | None = None) -> str | None:
    """Who serves host+path (`job 'x'` or `the ingress entry of 'h'`), other than `skip`."""
    row = state.table("ingress").get(host)
    if (
        row is not None
        and f"ingress:{host}" != skip
        and any(r["path"] == path for r in row["routes"])
    ):
        return f"the ingress entry of '{host}'"
    for name, job in state.table("jobs").items():
        if f"job:{name}" == skip:
            continue
        for claimed_host, claimed_path, _ in job_claims(job):
            if (claimed_host, claimed_path) == (host, path):
                return f"job '{name}'"
    return None


def job_claim_conflict(state: State, job: dict[str, Any]) -> dict[str, Any] | None:
    """The refusal for a job whose ingress someone else serves, else None."""
    for host, path, _ in job_claims(job):
        owner = owner_of(state, host, path, skip=f"job:{job['name']}")
        if owner is not None:
            return fail(409, "conflict", f"{host}{path} is already served by {owner}")
    return None


def _valid_routes(routes: Any) -> bool:
    return isinstance(routes, list) and all(
        isinstance(r, dict)
        and all(isinstance(r.get(k), str) and r.get(k) for k in ("path", "job", "group", "port"))
        for r in routes
    )


def ingress_put(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    host, routes, tls = cmd.get("host"), cmd.get("routes"), cmd.get("tls")
    if not isinstance(host, str) or not host or not _valid_routes(routes) or tls not in TLS_MODES:
        return fail(400, "invalid_ingress", "host, routes (path, job, group, port) and tls")
    cert = cmd.get("cert")
    if (tls == "manual") != isinstance(cert, dict):
        return fail(400, "invalid_ingress", "a manual certificate comes with tls: manual")
    for route in routes:
        owner = owner_of(state, host, route["path"], skip=f"ingress:{host}")
        if owner is not None:
            return fail(409, "conflict", f"{host}{route['path']} is already served by {owner}")
    table = state.table("ingress")
    existing = table.get(host)
    doc = {
        "host": host,
        "routes": [{k: r[k] for k in ("path", "job", "group", "port")} for r in routes],
        "tls": tls,
        "cert": cert if tls == "manual" else None,
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
        "updated_at": cmd.get("ts", 0),
    }
    changes.wrote("ingress", host, existing, "updated" if existing else "created")
    table[host] = doc
    state.touch("ingress", index)
    return ok(ingress=doc, created=existing is None)


def ingress_delete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    host = cmd.get("host")
    table = state.table("ingress")
    if host not in table:
        return fail(404, "ingress_not_found", f"no ingress entry for '{host}'")
    changes.wrote("ingress", host, table.pop(host), "deleted")
    state.touch("ingress", index)
    return ok(host=host)


def active_domains(state: State) -> dict[str, dict[str, Any]]:
    """Every served host -> `{host, tls, source, owner, routes}`, from the API's
    entries and the jobs' specs. A host is TLS (`acme`, or `manual` for an
    API entry with its own certificate) unless every route says `off`."""
    out: dict[str, dict[str, Any]] = {}
    for host, row in state.table("ingress").items():
        out[host] = {
            "host": host,
            "tls": row["tls"],
            "source": "api",
            "owner": None,
            "routes": [dict(r) for r in row["routes"]],
            "modify_index": row["modify_index"],
        }
    for name, job in state.table("jobs").items():
        for host, _path, route in job_claims(job):
            tls = route.pop("tls")
            domain = out.setdefault(
                host,
                {"host": host, "tls": "off", "source": "job", "owner": name, "routes": []},
            )
            domain["routes"].append(route)
            if domain["source"] == "job" and tls == "acme":
                domain["tls"] = "acme"
            domain["modify_index"] = max(domain.get("modify_index", 0), job["job_modify_index"])
    for domain in out.values():
        domain["routes"].sort(key=lambda r: r["path"])
    return out
