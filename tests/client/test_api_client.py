"""`ApiClient` on its own, against a small aiohttp app that plays the server.

A stand-in server is used because these tests are about the client's own
logic (headers sent, error bodies decoded, params encoded); the CLI tests
exercise it against a real heroctld.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from client import ApiClient, ApiClientError, ApiUnreachable, normalize_address
from tests.support.cluster import free_port


async def echo(request: web.Request) -> web.Response:
    body = await request.json() if request.can_read_body else None
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path,
            "query": dict(request.query),
            "authorization": request.headers.get("Authorization"),
            "body": body,
        },
        headers={"X-HeroCtl-Index": "7"},
    )


async def envelope(request: web.Request) -> web.Response:
    body = {"error": "job_not_found", "message": "job 'x' does not exist", "request_id": "req_1"}
    return web.json_response(body, status=404)


async def html(request: web.Request) -> web.Response:
    return web.Response(
        status=502, text="<html>bad gateway</html>", headers={"X-Request-Id": "req_2"}
    )


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/v1/echo/{tail:.*}", echo)
    app.router.add_route("*", "/v1/jobs{tail:.*}", echo)
    app.router.add_get("/v1/missing", envelope)
    app.router.add_get("/v1/proxy", html)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_sends_token_json_and_params(base: str) -> None:
    async with ApiClient(base, "tok123") as api:
        body, headers = await api.post(
            "/v1/echo/a", {"x": 1}, params={"wait": "5m", "stale": True, "skip": None}
        )
    assert body["authorization"] == "Bearer tok123"
    assert body["body"] == {"x": 1}
    assert body["query"] == {"wait": "5m", "stale": "true"}
    assert headers["X-HeroCtl-Index"] == "7"


async def test_no_token_no_header_and_names_are_quoted(base: str) -> None:
    async with ApiClient(base) as api:
        body, _ = await api.get("/v1/echo/x")
        assert body["authorization"] is None
        assert (await api.get_job("a/b"))["path"] == "/v1/jobs/a%2Fb"
        sent = await api.submit_job({"name": "web"}, job_modify_index=0)
    assert (sent["method"], sent["path"]) == ("POST", "/v1/jobs")
    assert sent["body"] == {"name": "web", "job_modify_index": 0}


async def test_error_envelope_becomes_api_client_error(base: str) -> None:
    async with ApiClient(base) as api:
        with pytest.raises(ApiClientError) as e:
            await api.get("/v1/missing")
    err = e.value
    assert (err.status, err.code, err.request_id) == (404, "job_not_found", "req_1")
    assert str(err) == "job 'x' does not exist (job_not_found, request req_1)"


async def test_error_without_envelope_keeps_status_and_request_id(base: str) -> None:
    async with ApiClient(base) as api:
        with pytest.raises(ApiClientError) as e:
            await api.get("/v1/proxy")
    assert (e.value.status, e.value.code, e.value.request_id) == (502, "http_502", "req_2")
    assert "bad gateway" in e.value.message


async def test_refused_connection_is_unreachable() -> None:
    address = f"127.0.0.1:{free_port()}"
    async with ApiClient(address) as api:
        with pytest.raises(ApiUnreachable) as e:
            await api.cluster_status()
    assert e.value.address == f"http://{address}"
    assert e.value.reason == "connection refused" and e.value.status == 0


def test_normalize_address() -> None:
    assert normalize_address("10.0.0.1:7070") == "http://10.0.0.1:7070"
    assert normalize_address(" https://manage.example.com/ ") == "https://manage.example.com"


def test_the_package_exports_the_library() -> None:
    import client

    for name in client.__all__:
        assert getattr(client, name) is not None, name
    assert {"ApiClient", "ApiClientError", "ApiUnreachable", "DEFAULT_ADDRESS"} <= set(
        client.__all__
    )
    assert {"INDEX_HEADER", "Params", "format_wait", "response_index"} <= set(client.__all__)
