"""A docker task's image: when the node pulls it (``pull``) and with which
credentials (``registry_auth``).

``pull`` is ``missing`` (the default: pull when the node does not have the
image), ``always`` (pull at every start, so a moved tag is followed) or
``never`` (a missing image fails the task). ``registry_auth`` is
``{"username": ..., "password_secret": NAME[@VERSION]}``: the password is a
cluster secret, named here like a task's ``secrets`` and fetched by the
node running the task at each start; the job (its raft entry, its GET)
only ever holds the secret's name.

Both are set in the normalized task only when they say something: a job
submitted before they existed normalizes to the same document after an
upgrade, so resubmitting it replaces no allocation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from domain.jobspec.errors import JobSpecError
from domain.jobspec.values import as_object, as_str, check_secret_ref, join_path, one_of

__all__ = ["DEFAULT_PULL", "IMAGE_KEYS", "PULL_POLICIES", "image_fields"]

PULL_POLICIES = ("missing", "always", "never")
DEFAULT_PULL = "missing"
IMAGE_KEYS = frozenset({"pull", "registry_auth"})
REGISTRY_AUTH_KEYS = {"username", "password_secret"}
# A registry user name: printable, no whitespace or ':' (basic auth's separator).
USERNAME_RE = re.compile(r"^[^\s:\x00-\x1f\x7f]{1,255}$")


def _registry_auth(value: Any, path: str) -> dict[str, str]:
    if isinstance(value, Mapping) and "password" in value:
        raise JobSpecError(
            join_path(path, "password"),
            "a password is never part of a job: store it as a secret "
            "(heroctl secret put NAME) and name it in password_secret",
        )
    doc = as_object(value, path, REGISTRY_AUTH_KEYS)
    for key in ("username", "password_secret"):
        if key not in doc:
            raise JobSpecError(join_path(path, key), "is required")
    username = as_str(doc["username"], join_path(path, "username"))
    if not USERNAME_RE.fullmatch(username):
        raise JobSpecError(
            join_path(path, "username"),
            "must be 1-255 printable characters without whitespace or ':'",
        )
    ref = as_str(doc["password_secret"], join_path(path, "password_secret"))
    check_secret_ref(ref, join_path(path, "password_secret"))
    return {"username": username, "password_secret": ref}


def image_fields(doc: Mapping[str, Any], path: str, driver: str) -> dict[str, Any]:
    """The task's ``pull`` and ``registry_auth`` as stored: only what differs
    from the defaults (see the module's docstring)."""
    out: dict[str, Any] = {}
    pull = doc.get("pull")
    if pull is not None:
        pull = one_of(pull, PULL_POLICIES, join_path(path, "pull"))
    auth = doc.get("registry_auth")
    if auth is not None:
        auth = _registry_auth(auth, join_path(path, "registry_auth"))
    if driver != "docker":
        for key, used in (("pull", pull), ("registry_auth", auth)):
            if used is not None:
                raise JobSpecError(join_path(path, key), "is used by the docker driver only")
    if pull is not None and pull != DEFAULT_PULL:
        out["pull"] = pull
    if auth is not None:
        out["registry_auth"] = auth
    return out
