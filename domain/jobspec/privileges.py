"""What a task may ask of its node beyond the sandbox: the user an exec task
runs as, a privileged docker container, host directories mounted into one.

Checked here like any other field (errors name the field's path); whether the
submitter may have them is a policy's question (:mod:`domain.job_policy`),
asked by the API at submit. The defaults are the sandbox: exec tasks run as
``nobody``, containers are not privileged and mount nothing of the host.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from domain.jobspec.errors import JobSpecError
from domain.jobspec.values import as_list, as_object, as_str, join_path

__all__ = ["DEFAULT_EXEC_USER", "as_bool", "host_path", "user_name", "volumes"]

DEFAULT_EXEC_USER = "nobody"
# A login name (as useradd accepts it) or a numeric uid.
USER_RE = re.compile(r"^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})$")
VOLUME_KEYS = {"source", "target", "read_only"}


def as_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise JobSpecError(path, "must be true or false")
    return value


def user_name(value: Any, path: str) -> str:
    """Who a task runs as: a user name or a numeric uid."""
    name = as_str(value, path)
    if not USER_RE.fullmatch(name):
        raise JobSpecError(path, f"{name!r} is not a user name or a numeric uid")
    return name


def host_path(value: Any, path: str) -> str:
    """An absolute path, normalized (``//`` and a trailing ``/`` dropped);
    ``..`` and ``.`` are refused rather than resolved, so that what a
    policy grants is exactly what is mounted."""
    text = as_str(value, path)
    if not text.startswith("/"):
        raise JobSpecError(path, f"{text!r} must be an absolute path")
    if any(part in (".", "..") for part in text.split("/")):
        raise JobSpecError(path, f"{text!r} must not contain '.' or '..'")
    if any(c in text for c in ":\0\n"):
        raise JobSpecError(path, f"{text!r} must not contain ':' or control characters")
    return posixpath.normpath(text).replace("//", "/")


def volumes(value: Any, path: str) -> list[dict[str, Any]]:
    """Host directories bind-mounted into a container:
    ``[{"source": "/srv/data", "target": "/data", "read_only": true}]``
    (``read_only`` defaults to true)."""
    out: list[dict[str, Any]] = []
    targets: set[str] = set()
    for i, item in enumerate(as_list(value, path)):
        p = join_path(path, i)
        doc = as_object(item, p, VOLUME_KEYS)
        for key in ("source", "target"):
            if key not in doc:
                raise JobSpecError(join_path(p, key), "is required")
        target = host_path(doc["target"], join_path(p, "target"))
        if target in targets:
            raise JobSpecError(join_path(p, "target"), f"{target!r} is mounted twice")
        targets.add(target)
        out.append(
            {
                "source": host_path(doc["source"], join_path(p, "source")),
                "target": target,
                "read_only": as_bool(doc.get("read_only", True), join_path(p, "read_only")),
            }
        )
    return out
