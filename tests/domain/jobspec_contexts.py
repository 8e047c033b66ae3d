"""Where each object of the job spec sits in a smallest valid job, for the
schema's drift tests: ``CONTEXTS[name](fields)`` is a job whose object
``name`` (a ``$defs`` name of the schema, or ``job``) is a minimal valid one
with ``fields`` added, and ``GETTERS[name]`` finds that object in the
normalized job."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from domain.jobspec import JobSpecError, normalize_job

Doc = dict[str, Any]
TASK = {"name": "t", "image": "busybox:1"}


def _job(**fields: Any) -> Doc:
    return {"name": "j", **fields}


def _group(group: Doc | None = None, task: Doc | None = None) -> Doc:
    return _job(groups=[{"name": "g", **(group or {}), "tasks": [{**TASK, **(task or {})}]}])


CONTEXTS: dict[str, Callable[[Doc], Doc]] = {
    "job": lambda f: _job(**f),
    "group": lambda f: _group(f),
    "update": lambda f: _group({"update": f}),
    "restart": lambda f: _group({"restart": f}),
    "ingress": lambda f: _group(
        {"ingress": [{"host": "a.example.com", "port": "http", **f}]},
        {"ports": [{"name": "http"}]},
    ),
    "task": lambda f: _group(task=f),
    "resources": lambda f: _group(task={"resources": f}),
    "port": lambda f: _group(task={"ports": [{"name": "p", **f}]}),
    "check": lambda f: _group(
        task={"ports": [{"name": "http"}], "check": {"type": "http", "port": "http", **f}}
    ),
    "volume": lambda f: _group(task={"volumes": [{"source": "/a", "target": "/b", **f}]}),
    "registry_auth": lambda f: _group(
        task={"registry_auth": {"username": "u", "password_secret": "s", **f}}
    ),
    "constraint": lambda f: _job(constraints=[{"attribute": "node.name", "value": "x", **f}]),
}


def _task(job: Doc) -> Doc:
    return job["groups"][0]["tasks"][0]


GETTERS: dict[str, Callable[[Doc], Any]] = {
    "job": lambda j: j,
    "group": lambda j: j["groups"][0],
    "update": lambda j: j["groups"][0]["update"],
    "restart": lambda j: j["groups"][0]["restart"],
    "ingress": lambda j: j["groups"][0]["ingress"][0],
    "task": _task,
    "resources": lambda j: _task(j)["resources"],
    "port": lambda j: _task(j)["ports"][0],
    "check": lambda j: _task(j)["check"],
    "volume": lambda j: _task(j)["volumes"][0],
    "registry_auth": lambda j: _task(j)["registry_auth"],
    "constraint": lambda j: j["constraints"][0],
}

_KNOWN = re.compile(r"unknown field \(known fields: (.*)\)$")


def known_fields(name: str) -> set[str]:
    """The fields the validator knows in object ``name``: what its error for an
    unknown field lists."""
    try:
        normalize_job(CONTEXTS[name]({"zz_unknown": 1}))
    except JobSpecError as exc:
        match = _KNOWN.match(exc.message)
        assert match and exc.path.endswith("zz_unknown"), exc
        return set(match.group(1).split(", "))
    raise AssertionError(f"the validator took an unknown field in {name}")
