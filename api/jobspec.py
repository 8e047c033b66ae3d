"""Job document validation at the API edge (before a command is built)."""

from __future__ import annotations

import re
from typing import Any

from api.errors import ApiError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise ApiError(
            400,
            "missing_field" if name is None else "invalid_field",
            f"field '{field}' is required and must be a string",
        )
    if not NAME_RE.match(name):
        raise ApiError(
            400,
            "invalid_field",
            f"field '{field}' must be a DNS label: lowercase letters, digits and '-', at most 63",
        )
    return name


def parse_submission(body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """(job spec, check-and-set index or None) from a POST /v1/jobs body.

    Accepts the job itself or `{"job": {...}}`; `job_modify_index` may sit at
    either level.
    """
    cas = body.get("job_modify_index")
    job = body.get("job") if isinstance(body.get("job"), dict) else body
    if cas is None:
        cas = job.get("job_modify_index")
    if cas is not None and (not isinstance(cas, int) or isinstance(cas, bool) or cas < 0):
        raise ApiError(
            400, "invalid_field", "field 'job_modify_index' must be a non-negative integer"
        )
    spec = {k: v for k, v in job.items() if k not in _SERVER_FIELDS}
    check_name(spec.get("name"))
    if "type" in spec and spec["type"] not in ("service", "batch"):
        raise ApiError(400, "invalid_field", "field 'type' must be 'service' or 'batch'")
    spec.setdefault("type", "service")
    return spec, cas


# Fields the server owns; a client copy of them is ignored on submit.
_SERVER_FIELDS = {
    "job_modify_index",
    "modify_index",
    "create_index",
    "version",
    "submit_time",
    "status",
    "index",
}


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "name",
        "type",
        "status",
        "version",
        "create_index",
        "modify_index",
        "job_modify_index",
        "submit_time",
    )
    return {k: doc.get(k) for k in keys}
