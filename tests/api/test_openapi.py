"""The OpenAPI document against the app: every route the server registers is
described (and nothing else), every reference resolves, every schema is a
valid JSON Schema (2020-12), every operation documents its errors with the
envelope httpkit.errors renders."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator

from agent.http import endpoints as agent_endpoints
from api.app import build_app
from api.openapi.document import OPERATIONS, build, document, document_bytes
from domain.jobspec.schema import job_schema

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def registered_routes() -> set[tuple[str, str]]:
    """(method, template) of every API route a server's app serves, as heroctld
    builds it (with its embedded agent's endpoints): everything under /v1/ (the
    web UI's pages are not the API); HEAD is aiohttp's twin of each GET."""
    replica = SimpleNamespace(identity=SimpleNamespace(name="probe"), read=lambda: None)
    app = build_app(replica, extra_routes=[agent_endpoints.routes])  # type: ignore[arg-type]
    out = set()
    for route in app.router.routes():
        assert isinstance(route, web.AbstractRoute)
        resource = route.resource
        assert resource is not None
        if route.method != "HEAD" and resource.canonical.startswith("/v1/"):
            out.add((route.method, resource.canonical))
    return out


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_registered_route_is_documented_and_nothing_else() -> None:
    registered, documented = registered_routes(), documented_routes(document())
    missing = sorted(registered - documented)
    extra = sorted(documented - registered)
    assert not missing, f"routes without a description in api/openapi/paths_*.py: {missing}"
    assert not extra, f"described in api/openapi/paths_*.py but not registered: {extra}"


def test_the_document_is_openapi_3_1_with_unique_operation_ids() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    ids = [
        op["operationId"]
        for item in doc["paths"].values()
        for m, op in item.items()
        if m in METHODS
    ]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    tags = {t["name"] for t in doc["tags"]}
    for item in doc["paths"].values():
        for op in item.values():
            assert set(op["tags"]) <= tags
            assert op["summary"] and op["responses"]


def _walk(node: Any, where: str = "#") -> Any:
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from _walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}/{i}")


def _resolve(doc: dict[str, Any], pointer: str) -> Any:
    node: Any = doc
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves() -> None:
    doc = document()
    refs = [(w, n["$ref"]) for w, n in _walk(doc) if isinstance(n.get("$ref"), str)]
    assert refs
    for where, target in refs:
        assert target.startswith("#/"), f"{where}: {target} is not local"
        _resolve(doc, target)  # KeyError names what is missing


def _schemas(doc: dict[str, Any]) -> Any:
    yield from doc["components"]["schemas"].items()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for p in op.get("parameters", []):
                yield f"{method} {path} ?{p['name']}", p["schema"]
            for media in op.get("requestBody", {}).get("content", {}).values():
                yield f"{method} {path} body", media["schema"]
            for status, resp in op["responses"].items():
                for media in resp.get("content", {}).values():
                    yield f"{method} {path} {status}", media["schema"]


def test_every_schema_is_a_valid_json_schema() -> None:
    doc = document()
    for where, schema in _schemas(doc):
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as e:  # noqa: BLE001 - name the schema
            pytest.fail(f"{where}: {e}")


def test_every_operation_documents_its_errors_with_the_envelope() -> None:
    doc = document()
    responses = doc["components"]["responses"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = {int(s) for s in op["responses"]}
            assert 500 in codes, f"{method} {path}"
            public = op["security"] == []
            assert public or {401, 403} <= codes, f"{method} {path}: 401/403"
            if "{" in path:
                assert 404 in codes, f"{method} {path}: 404"
            if "requestBody" in op:
                assert {400, 413} <= codes, f"{method} {path}: 400/413"
            for status, resp in op["responses"].items():
                if int(status) < 400:
                    continue
                resp = responses[resp["$ref"].rsplit("/", 1)[1]] if "$ref" in resp else resp
                schema = resp["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path}"


def test_the_error_schema_is_what_the_envelope_renders() -> None:
    from httpkit.errors import error_response, new_request_id

    body = error_response(404, "job_not_found", "job 'x' does not exist", new_request_id())
    import json

    assert body.body is not None
    error = document()["components"]["schemas"]["Error"]
    Draft202012Validator(error).validate(json.loads(body.body))  # type: ignore[arg-type]


def test_the_job_schema_is_the_job_specs_own() -> None:
    """The Job component is domain/jobspec/schema.py's schema with its
    references rebased: a document valid for one is valid for the other."""
    doc = document()
    job = doc["components"]["schemas"]["Job"]
    assert set(job["properties"]) == set(job_schema()["properties"])
    assert job["$defs"].keys() == job_schema()["$defs"].keys()
    full = {**job_schema()}
    rebased = {**job, "components": {"schemas": {"Job": job}}}
    validator = Draft202012Validator(rebased)
    for example in full["examples"]:
        Draft202012Validator(full).validate(example)
        validator.validate(example)
    bad = {"name": "Not A Label", "image": 3}
    assert not validator.is_valid(bad) and not Draft202012Validator(full).is_valid(bad)


def test_path_parameters_match_the_templates() -> None:
    for path, item in document()["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_the_document_is_built_once_and_is_json() -> None:
    assert document_bytes() is document_bytes()
    assert document() == build()
