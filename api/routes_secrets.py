"""Secrets: values sealed here, before they are proposed; the keyring operator endpoints.

The receiving server encrypts a value (AES-256-GCM, the keyring's primary key
derived from the cluster key, AAD = name and version) and proposes only the
ciphertext, with the version it creates as a check-and-set; on a conflict it
re-reads and seals again. Reading a value needs `read` on that name,
listing needs `list`; the middleware already checked the resource as a whole.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp import web

from api.context import blocking_view, read_headers, read_view, replica_of
from api.security.runtime import require_secret, security_of
from domain.crypto import DecryptError, new_key_id
from httpkit.errors import ApiError, read_json_object
from httpkit.identity import identity_of
from httpkit.responses import json_response, ms_to_rfc3339
from raft.fsm_secrets import NAME_RE, describe, version_entry
from raft.replica import CommandRejected, Replica

routes = web.RouteTableDef()

MAX_VALUE_BYTES = 64 * 1024
PUT_ATTEMPTS = 30  # with a jittered pause, so writers racing on one name all get through


def _check_name(name: Any, field: str = "name") -> str:
    if name is None:
        raise ApiError(400, "missing_field", f"field '{field}' is required")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ApiError(
            400, "invalid_name", f"field '{field}' must be 1-128 characters of [A-Za-z0-9_.-]"
        )
    return name


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    out = describe(doc)
    out["create_time"] = ms_to_rfc3339(out["create_time"])
    out["modify_time"] = ms_to_rfc3339(out["modify_time"])
    return out


def _not_found(name: str) -> ApiError:
    return ApiError(404, "secret_not_found", f"secret '{name}' does not exist")


def _open(request: web.Request, name: str, entry: dict[str, Any]) -> str:
    keys = security_of(request).keys
    try:
        plain = keys.open_secret(
            entry["key_id"], name, entry["version"], entry["nonce"], entry["ciphertext"]
        )
    except DecryptError as e:
        raise ApiError(500, "decryption_failed", str(e)) from None
    return plain.decode("utf-8", "surrogatepass")


async def seal_and_put(
    request: web.Request, name: str, plain: bytes, rollback_of: int | None = None
) -> dict[str, Any]:
    """Encrypt for the next version and propose it; retry on a concurrent writer."""
    replica: Replica = replica_of(request)
    keys = security_of(request).keys
    for _ in range(PUT_ATTEMPTS):
        await replica.consistent()
        with replica.read() as view:
            doc = view.secrets.get(name)
            ring = view.secrets.keyring()
        version = (doc["version"] if doc else 0) + 1
        key_id = ring["primary"] if ring else new_key_id()
        nonce, ciphertext = keys.seal_secret(key_id, name, version, plain)
        fields: dict[str, Any] = {
            "name": name,
            "version": version,
            "key_id": key_id,
            "nonce": nonce,
            "ciphertext": ciphertext,
        }
        if rollback_of is not None:
            fields["rollback_of"] = rollback_of
        try:
            return await replica.write("secret.put", **fields)
        except CommandRejected as e:
            if e.code not in ("version_conflict", "unknown_key"):
                raise
        await asyncio.sleep(random.uniform(0, 0.02))
    raise ApiError(409, "conflict", f"secret '{name}' is being changed concurrently; retry")


@routes.get("/v1/secrets")
async def list_secrets(request: web.Request) -> web.Response:
    perms = identity_of(request).permissions
    replica = await blocking_view(request, "secrets")
    with replica.read() as view:
        docs = [doc for _, doc in sorted(view.secrets.items())]
        index = view.secrets.index
    visible = [_meta(d) for d in docs if perms.may_secret(d["name"], "list")]
    return json_response(visible, headers=read_headers(replica, index))


@routes.post("/v1/secrets")
async def put_secret(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = _check_name(body.get("name"))
    value = body.get("value")
    if value is None:
        raise ApiError(400, "missing_field", "field 'value' is required")
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", "field 'value' must be a string")
    plain = value.encode("utf-8", "surrogatepass")
    if len(plain) > MAX_VALUE_BYTES:
        raise ApiError(413, "value_too_large", f"a secret value is at most {MAX_VALUE_BYTES} bytes")
    require_secret(request, name, "write")
    result = await seal_and_put(request, name, plain)
    return json_response(
        _meta(result["secret"]),
        status=201 if result["created"] else 200,
        headers={"X-HeroCtl-Index": str(result["index"])},
    )


def _version_param(request: web.Request) -> int | None:
    raw = request.query.get("version")
    if raw is None:
        return None
    try:
        version = int(raw)
    except ValueError:
        version = 0
    if version < 1 or version > 2**62:
        raise ApiError(400, "invalid_field", "query 'version' must be a positive integer")
    return version


@routes.get("/v1/secrets/{name}")
async def get_secret(request: web.Request) -> web.Response:
    name = _check_name(request.match_info["name"])
    version = _version_param(request)
    require_secret(request, name, "read")
    replica = await blocking_view(request, "secrets")
    with replica.read() as view:
        doc = view.secrets.get(name)
        index = view.secrets.index
    if doc is None:
        raise _not_found(name)
    entry = version_entry(doc, version if version is not None else doc["version"])
    if entry is None:
        raise ApiError(404, "secret_version_not_found", f"secret '{name}' has no version {version}")
    out = _meta(doc)
    out.update(
        version=entry["version"],
        current_version=doc["version"],
        value=_open(request, name, entry),
        version_create_time=ms_to_rfc3339(entry["create_time"]),
    )
    return json_response(out, headers=read_headers(replica, index))


@routes.get("/v1/secrets/{name}/versions")
async def secret_versions(request: web.Request) -> web.Response:
    name = _check_name(request.match_info["name"])
    require_secret(request, name, "list")
    replica = await blocking_view(request, "secrets")
    with replica.read() as view:
        doc = view.secrets.get(name)
        index = view.secrets.index
    if doc is None:
        raise _not_found(name)
    versions = [
        {
            "version": e["version"],
            "create_time": ms_to_rfc3339(e["create_time"]),
            "create_index": e["create_index"],
            "key_id": e["key_id"],
            "rollback_of": e.get("rollback_of"),
            "current": e["version"] == doc["version"],
        }
        for e in reversed(doc["versions"])
    ]
    return json_response(versions, headers=read_headers(replica, index))


@routes.post("/v1/secrets/{name}/rollback")
async def rollback_secret(request: web.Request) -> web.Response:
    name = _check_name(request.match_info["name"])
    body = await read_json_object(request)
    version = body.get("version")
    if version is None:
        raise ApiError(400, "missing_field", "field 'version' is required")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ApiError(400, "invalid_field", "field 'version' must be a positive integer")
    require_secret(request, name, "write")
    replica = await read_view(request)
    with replica.read() as view:
        doc = view.secrets.get(name)
    if doc is None:
        raise _not_found(name)
    entry = version_entry(doc, version)
    if entry is None:
        raise ApiError(404, "secret_version_not_found", f"secret '{name}' has no version {version}")
    plain = _open(request, name, entry).encode("utf-8", "surrogatepass")
    result = await seal_and_put(request, name, plain, rollback_of=version)
    out = _meta(result["secret"])
    out["rollback_of"] = version
    return json_response(out, headers={"X-HeroCtl-Index": str(result["index"])})


@routes.delete("/v1/secrets/{name}")
async def delete_secret(request: web.Request) -> web.Response:
    name = _check_name(request.match_info["name"])
    require_secret(request, name, "write")
    result = await replica_of(request).write("secret.delete", name=name)
    return json_response(
        {"name": name, "deleted": True}, headers={"X-HeroCtl-Index": str(result["index"])}
    )
