"""ACL: bootstrap, policies, roles, tokens and users (list, create, read, update, delete).

Handlers validate input, make the secrets (token secrets, password hashes) on
this server and propose commands carrying only hashes; the permission checks
happened in the auth middleware (`acl: read|write`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.context import read_headers, read_view, replica_of
from api.security.runtime import security_of
from domain.acl_bootstrap import ADMIN_USER, bootstrap
from domain.passwords import check_password_policy, hash_password
from domain.policy import PolicyError, validate_rules
from domain.tokens import (
    generate_password,
    hash_secret,
    new_accessor_id,
    new_token_secret,
)
from httpkit.errors import ApiError, read_json_object
from httpkit.identity import identity_of
from httpkit.responses import json_response, ms_to_rfc3339
from raft.fsm_acl import TOKEN_TYPES, USER_TYPES, public_token, public_user
from raft.replica import StateView
from raft.views import Table

routes = web.RouteTableDef()

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_DESCRIPTION = 1024
MAX_TTL = 10 * 365 * 86_400


# --- helpers -----------------------------------------------------------------------
def _name(value: Any, field: str = "name", pattern: re.Pattern[str] = NAME_RE) -> str:
    if value is None:
        raise ApiError(400, "missing_field", f"field '{field}' is required")
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ApiError(
            400,
            "invalid_field",
            f"field '{field}' must match {pattern.pattern} (got {value!r:.80})",
        )
    return value


def _optional_str(body: dict[str, Any], field: str, limit: int = MAX_DESCRIPTION) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(400, "invalid_field", f"field '{field}' must be a string of <= {limit}")
    return value


def _names(body: dict[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 256:
        raise ApiError(400, "invalid_field", f"field '{field}' must be a list of names")
    return [_name(v, field) for v in value]


def _choice(body: dict[str, Any], field: str, allowed: tuple[str, ...]) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if value not in allowed:
        raise ApiError(400, "invalid_field", f"field '{field}' must be one of {', '.join(allowed)}")
    return value


def _times(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for key in ("create_time", "expires_at"):
        if key in out:
            out[key] = ms_to_rfc3339(out[key])
    return out


TableOf = Callable[[StateView], Table]


async def _list(request: web.Request, table_of: TableOf, render) -> web.Response:  # type: ignore[no-untyped-def]
    replica = await read_view(request)
    with replica.read() as view:
        table = table_of(view)
        rows = [render(row) for _, row in sorted(table.items())]
        index = table.index
    return json_response(rows, headers=read_headers(replica, index))


async def _get(
    request: web.Request, table_of: TableOf, key: str, code: str, render
) -> web.Response:  # type: ignore[no-untyped-def]
    replica = await read_view(request)
    with replica.read() as view:
        table = table_of(view)
        row = table.get(key)
        index = table.index
    if row is None:
        raise ApiError(404, code, f"'{key}' does not exist")
    return json_response(render(row), headers=read_headers(replica, index))


def _written(result: dict[str, Any], doc: Any, created: bool | None = None) -> web.Response:
    status = 201 if created else 200
    return json_response(doc, status=status, headers={"X-HeroCtl-Index": str(result["index"])})


def _policy_view(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row)


def _token_view(row: dict[str, Any]) -> dict[str, Any]:
    return _times(public_token(row))


def _user_view(row: dict[str, Any]) -> dict[str, Any]:
    # FSM results are already public (no hash, `has_password` set).
    return _times(public_user(row) if "password_hash" in row else row)


# --- bootstrap -------------------------------------------------------------------------
@routes.post("/v1/acl/bootstrap")
async def acl_bootstrap(request: web.Request) -> web.Response:
    sec = security_of(request)
    raw = await request.read()
    body = await read_json_object(request) if raw.strip() else {}
    password = body.get("password")
    generated = password is None
    if generated:
        password = generate_password()
    elif not isinstance(password, str):
        raise ApiError(400, "invalid_field", "field 'password' must be a string")
    elif (reason := check_password_policy(password)) is not None:
        raise ApiError(400, "invalid_field", f"field 'password': {reason}")
    if sec.auth.bootstrapped():
        raise ApiError(409, "already_bootstrapped", "the ACL system is already bootstrapped")
    secret = new_token_secret()
    result = await bootstrap(replica_of(request), sec.keys, secret, password)
    out: dict[str, Any] = {
        "accessor_id": result["accessor_id"],
        "secret_id": secret,
        "type": "management",
        "username": ADMIN_USER,
    }
    if generated:
        out["password"] = password  # shown once, never stored in clear
    return json_response(out, status=201, headers={"X-HeroCtl-Index": str(result["index"])})


# --- policies ------------------------------------------------------------------------------
def _policy_body(body: dict[str, Any], name: str | None) -> dict[str, Any]:
    if name is not None and body.get("name") not in (None, name):
        raise ApiError(400, "invalid_field", "field 'name' does not match the URL")
    pname = _name(name if name is not None else body.get("name"))
    if "rules" not in body:
        raise ApiError(400, "missing_field", "field 'rules' is required")
    try:
        rules = validate_rules(body["rules"])
    except PolicyError as e:
        raise ApiError(400, "invalid_field", f"field 'rules': {e}") from None
    return {"name": pname, "description": _optional_str(body, "description") or "", "rules": rules}


@routes.get("/v1/acl/policies")
async def list_policies(request: web.Request) -> web.Response:
    return await _list(request, lambda v: v.acl_policies, _policy_view)


@routes.post("/v1/acl/policies")
async def create_policy(request: web.Request) -> web.Response:
    pol = _policy_body(await read_json_object(request), None)
    result = await replica_of(request).write("acl.policy.upsert", policy=pol, create_only=True)
    return _written(result, result["policy"], True)


@routes.get("/v1/acl/policies/{name}")
async def get_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return await _get(request, lambda v: v.acl_policies, name, "policy_not_found", _policy_view)


@routes.post("/v1/acl/policies/{name}")
@routes.put("/v1/acl/policies/{name}")
async def upsert_policy(request: web.Request) -> web.Response:
    pol = _policy_body(await read_json_object(request), _name(request.match_info["name"]))
    result = await replica_of(request).write("acl.policy.upsert", policy=pol)
    return _written(result, result["policy"], result["created"])


@routes.delete("/v1/acl/policies/{name}")
async def delete_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    result = await replica_of(request).write("acl.policy.delete", name=name)
    return _written(result, {"name": name, "deleted": True})


# --- roles ---------------------------------------------------------------------------------
def _role_body(body: dict[str, Any], name: str | None) -> dict[str, Any]:
    if name is not None and body.get("name") not in (None, name):
        raise ApiError(400, "invalid_field", "field 'name' does not match the URL")
    rname = _name(name if name is not None else body.get("name"))
    policies = _names(body, "policies")
    if policies is None:
        raise ApiError(400, "missing_field", "field 'policies' is required")
    return {
        "name": rname,
        "description": _optional_str(body, "description") or "",
        "policies": policies,
    }


@routes.get("/v1/acl/roles")
async def list_roles(request: web.Request) -> web.Response:
    return await _list(request, lambda v: v.acl_roles, dict)


@routes.post("/v1/acl/roles")
async def create_role(request: web.Request) -> web.Response:
    role = _role_body(await read_json_object(request), None)
    result = await replica_of(request).write("acl.role.upsert", role=role, create_only=True)
    return _written(result, result["role"], True)


@routes.get("/v1/acl/roles/{name}")
async def get_role(request: web.Request) -> web.Response:
    return await _get(
        request, lambda v: v.acl_roles, request.match_info["name"], "role_not_found", dict
    )


@routes.post("/v1/acl/roles/{name}")
@routes.put("/v1/acl/roles/{name}")
async def upsert_role(request: web.Request) -> web.Response:
    role = _role_body(await read_json_object(request), _name(request.match_info["name"]))
    result = await replica_of(request).write("acl.role.upsert", role=role)
    return _written(result, result["role"], result["created"])


@routes.delete("/v1/acl/roles/{name}")
async def delete_role(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    result = await replica_of(request).write("acl.role.delete", name=name)
    return _written(result, {"name": name, "deleted": True})


# --- tokens --------------------------------------------------------------------------------
@routes.get("/v1/acl/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    return await _list(request, lambda v: v.acl_tokens, _token_view)


@routes.post("/v1/acl/tokens")
async def create_token(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    ttl = body.get("expiration_ttl")
    if ttl is not None and (
        not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= MAX_TTL
    ):
        raise ApiError(400, "invalid_field", "field 'expiration_ttl' must be seconds (> 0)")
    sec = security_of(request)
    secret = new_token_secret()
    token = {
        "accessor_id": new_accessor_id(),
        "secret_hash": hash_secret(secret),
        "name": _optional_str(body, "name", 256) or "",
        "type": _choice(body, "type", TOKEN_TYPES) or "client",
        "policies": _names(body, "policies") or [],
        "roles": _names(body, "roles") or [],
        "expires_at": int((sec.clock() + ttl) * 1000) if ttl else None,
    }
    if token["type"] != "management" and not token["policies"] and not token["roles"]:
        raise ApiError(400, "missing_field", "a client or service token needs policies or roles")
    result = await replica_of(request).write("acl.token.create", token=token)
    out = _token_view(result["token"])
    out["secret_id"] = secret  # the only time the secret is shown
    return _written(result, out, True)


@routes.get("/v1/acl/tokens/self")
async def token_self(request: web.Request) -> web.Response:
    ident = identity_of(request)
    replica = replica_of(request)
    out = ident.describe()
    # what the caller may do, merged from its policies and roles: the web panel
    # shows no button for what it may not change
    perms = ident.permissions
    out["permissions"] = {
        "management": perms.management,
        "resources": dict(perms.resources),
        "secrets": {pattern: access for _spec, pattern, _rx, access in perms.secret_rules},
    }
    if ident.kind == "token":
        with replica.read() as view:
            row = view.acl_tokens.get(ident.name)
        if row is not None:
            out.update(_token_view(row))
    return json_response(out, headers={"X-HeroCtl-Index": str(replica.index)})


@routes.get("/v1/acl/tokens/{accessor}")
async def get_token(request: web.Request) -> web.Response:
    acc = request.match_info["accessor"]
    return await _get(request, lambda v: v.acl_tokens, acc, "token_not_found", _token_view)


@routes.post("/v1/acl/tokens/{accessor}")
@routes.put("/v1/acl/tokens/{accessor}")
async def update_token(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    fields: dict[str, Any] = {}
    for key in ("policies", "roles"):
        if (names := _names(body, key)) is not None:
            fields[key] = names
    if (name := _optional_str(body, "name", 256)) is not None:
        fields["name"] = name
    if (ttype := _choice(body, "type", TOKEN_TYPES)) is not None:
        fields["type"] = ttype
    acc = request.match_info["accessor"]
    result = await replica_of(request).write("acl.token.update", accessor_id=acc, **fields)
    return _written(result, _token_view(result["token"]))


@routes.delete("/v1/acl/tokens/{accessor}")
async def delete_token(request: web.Request) -> web.Response:
    acc = request.match_info["accessor"]
    result = await replica_of(request).write("acl.token.delete", accessor_id=acc)
    return _written(result, {"accessor_id": acc, "deleted": True})


# --- users ---------------------------------------------------------------------------------
async def _password_hash(body: dict[str, Any]) -> str | None:
    password = body.get("password")
    if password is None:
        return None
    if not isinstance(password, str):
        raise ApiError(400, "invalid_field", "field 'password' must be a string")
    if (reason := check_password_policy(password)) is not None:
        raise ApiError(400, "invalid_field", f"field 'password': {reason}")
    return await asyncio.get_running_loop().run_in_executor(None, hash_password, password)


async def _user_body(body: dict[str, Any], username: str) -> dict[str, Any]:
    user: dict[str, Any] = {"username": username}
    for key in ("policies", "roles"):
        if (names := _names(body, key)) is not None:
            user[key] = names
    if (utype := _choice(body, "type", USER_TYPES)) is not None:
        user["type"] = utype
    if (hashed := await _password_hash(body)) is not None:
        user["password_hash"] = hashed
    return user


@routes.get("/v1/acl/users")
async def list_users(request: web.Request) -> web.Response:
    return await _list(request, lambda v: v.acl_users, _user_view)


@routes.post("/v1/acl/users")
async def create_user(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    username = _name(body.get("username"), "username", USERNAME_RE)
    user = await _user_body(body, username)
    result = await replica_of(request).write("acl.user.upsert", user=user, create_only=True)
    return _written(result, _user_view(result["user"]), True)


@routes.get("/v1/acl/users/{username}")
async def get_user(request: web.Request) -> web.Response:
    name = request.match_info["username"]
    return await _get(request, lambda v: v.acl_users, name, "user_not_found", _user_view)


@routes.post("/v1/acl/users/{username}")
@routes.put("/v1/acl/users/{username}")
async def update_user(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    username = _name(request.match_info["username"], "username", USERNAME_RE)
    if body.get("username") not in (None, username):
        raise ApiError(400, "invalid_field", "field 'username' does not match the URL")
    user = await _user_body(body, username)
    result = await replica_of(request).write("acl.user.upsert", user=user)
    return _written(result, _user_view(result["user"]), result["created"])


@routes.delete("/v1/acl/users/{username}")
async def delete_user(request: web.Request) -> web.Response:
    name = request.match_info["username"]
    result = await replica_of(request).write("acl.user.delete", username=name)
    return _written(result, {"username": name, "deleted": True})
