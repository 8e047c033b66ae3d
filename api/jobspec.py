"""Job submissions at the API edge: validation errors become 400s naming the field."""

from __future__ import annotations

from typing import Any

from domain.jobspec import DNS_LABEL_RE, JobSpecError, normalize_job
from domain.jobspec.schema import RESERVED_JOB_NAMES
from httpkit.errors import ApiError


def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not DNS_LABEL_RE.fullmatch(name):
        raise ApiError(
            400,
            "invalid_field",
            f"{field}: must be a DNS label (lowercase letters, digits, '-'; at most 63)",
        )
    return name


def parse_submission(body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """(normalized job, check-and-set index or None) from a POST /v1/jobs body.

    Accepts the job itself or `{"job": {...}}`; `job_modify_index` may sit at
    either level.
    """
    job = body.get("job") if isinstance(body.get("job"), dict) else body
    cas = body.get("job_modify_index", job.get("job_modify_index"))
    if cas is not None and (not isinstance(cas, int) or isinstance(cas, bool) or cas < 0):
        raise ApiError(400, "invalid_field", "job_modify_index: must be a non-negative integer")
    try:
        spec = normalize_job(job)
    except JobSpecError as e:
        code = "missing_field" if "required" in e.message else "invalid_field"
        raise ApiError(400, code, f"{e.path or 'job'}: {e.message}") from None
    if spec["name"] in RESERVED_JOB_NAMES:
        raise ApiError(
            400,
            "invalid_field",
            f"name: {spec['name']!r} is reserved (GET /v1/jobs/{spec['name']} is the job "
            "spec's schema)",
        )
    return spec, cas


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
    out = {k: doc.get(k) for k in keys}
    out["groups"] = {g["name"]: g.get("count", 1) for g in doc.get("groups", [])}
    return out
