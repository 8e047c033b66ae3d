"""What a rendered configuration does, through real requests to one real nginx
(shared by the module) in front of real aiohttp upstreams on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from agent.ingress import (
    AccessLogReader,
    IngressConfig,
    Listeners,
    NginxSupervisor,
    Route,
    Site,
)
from tests.agent.ingress.support import (
    TestCA,
    Upstream,
    client,
    eventually,
    free_port,
    get_json,
    h2_get,
    start_upstream,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONG_TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"  # 43 characters, as CAs issue them


@dataclass
class Ingress:
    sup: NginxSupervisor
    ca: TestCA
    http: int
    https: int
    up: dict[str, Upstream]
    dead: str

    def url(self, host: str, path: str = "/", https: bool = False) -> str:
        return f"{'https' if https else 'http'}://{host}:{self.https if https else self.http}{path}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ingress(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ingress]:
    folder = tmp_path_factory.mktemp("ingress-serving")
    ca = TestCA(folder)
    upstreams: dict[str, Upstream] = {}
    sup: NginxSupervisor | None = None
    try:
        for name in ("a", "b", "c", "d", "m"):
            upstreams[name] = await start_upstream(name)
        backend_tls = ca.server_context("backend.internal", folder=folder)
        upstreams["tls"] = await start_upstream("tls", tls=backend_tls)
        dead = f"127.0.0.1:{free_port()}"
        cert, key = ca.issue("secure.test")
        u = {k: v.address for k, v in upstreams.items()}
        ca_file = str(ca.file)
        sites = (
            Site(
                "app.test",
                (
                    Route("/", (u["a"], u["b"], dead)),
                    Route("/api", (u["c"],)),
                    Route("/api/v2/", (u["d"],)),
                    Route("/empty", ()),
                    Route("/internal", (u["tls"],), True, ca_file, "backend.internal"),
                    Route("/wrong-name", (u["tls"],), True, ca_file, "other.internal"),
                ),
                tls=False,
            ),
            Site("secure.test", (Route("/", (u["a"],)),), tls=True, cert_pem=cert, key_pem=key),
            Site("pending.test", (Route("/", (u["b"],)),), tls=True),
            Site("metrics.test", (Route("/", (u["m"],)), Route("/none", ())), tls=False),
        )
        listeners = Listeners("127.0.0.1", free_port(), free_port(), worker_processes=1)
        challenges = {"tok-1": "tok-1.thumbprint", LONG_TOKEN: f"{LONG_TOKEN}.thumbprint"}
        config = IngressConfig(listeners, sites, challenges)
        sup = NginxSupervisor(folder / "prefix")
        await sup.start(config)
        yield Ingress(sup, ca, listeners.http_port, listeners.https_port, upstreams, dead)
    finally:
        if sup is not None:
            await sup.close()
        for upstream in upstreams.values():
            await upstream.close()


async def test_requests_spread_over_the_upstreams_and_skip_a_dead_one(ingress: Ingress) -> None:
    seen: list[str] = []
    async with client() as s:
        for _ in range(30):
            status, body = await get_json(s, ingress.url("app.test", "/page"))
            assert status == 200, body
            seen.append(body["upstream"])
    assert set(seen) == {"a", "b"}
    assert min(seen.count("a"), seen.count("b")) >= 5


async def test_the_longest_path_prefix_wins_segment_by_segment(ingress: Ingress) -> None:
    expected = {
        "/api": "c",
        "/api/": "c",
        "/api/users?x=1": "c",
        "/api/v2": "d",
        "/api/v2/items": "d",
    }
    async with client() as s:
        for path, upstream in expected.items():
            status, body = await get_json(s, ingress.url("app.test", path))
            assert (status, body["upstream"], body["path"]) == (200, upstream, path)
        status, body = await get_json(s, ingress.url("app.test", "/apix"))
        assert status == 200 and body["upstream"] in ("a", "b")  # "/", not "/api"


async def test_a_route_without_upstreams_answers_our_503(ingress: Ingress) -> None:
    async with client() as s:
        status, body = await get_json(s, ingress.url("app.test", "/empty/x"))
        assert status == 503 and "HeroCtl ingress" in body and "<html>" in body
        status, body = await get_json(
            s, ingress.url("app.test", "/empty"), headers={"Accept": "application/json"}
        )
        assert status == 503 and body["status"] == 503


async def test_an_unknown_host_gets_our_404_over_http_and_https(ingress: Ingress) -> None:
    async with client() as s:
        status, body = await get_json(s, ingress.url("nowhere.test", "/x"))
        assert status == 404 and "no site or route here" in body
        # Over HTTPS the default server shows the fallback certificate: our CA
        # does not vouch for it...
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get_json(
                s, ingress.url("nowhere.test", "/x", https=True), ssl=ingress.ca.client_context()
            )
        # ...but it is exactly the prefix's self-signed certificate, which answers our 404.
        pinned = ssl.create_default_context(cafile=str(ingress.sup.paths.fallback_cert))
        pinned.check_hostname = False
        status, body = await get_json(s, ingress.url("nowhere.test", "/x", https=True), ssl=pinned)
        assert status == 404 and "no site or route here" in body


async def test_http_redirects_to_https_for_a_site_with_a_certificate(ingress: Ingress) -> None:
    async with client(ingress.ca) as s:
        async with s.post(ingress.url("secure.test", "/p?q=1"), allow_redirects=False) as r:
            assert r.status == 308
            assert r.headers["Location"] == ingress.url("secure.test", "/p?q=1", https=True)
        status, body = await get_json(s, ingress.url("secure.test", "/p?q=1", https=True))
        assert status == 200 and body["upstream"] == "a"
        assert body["headers"]["x-forwarded-proto"] == "https"
        # A TLS site still waiting for its certificate is served over HTTP.
        status, body = await get_json(s, ingress.url("pending.test", "/"))
        assert status == 200 and body["upstream"] == "b"


async def test_http2_is_negotiated_on_the_tls_listener(ingress: Ingress) -> None:
    ctx = ingress.ca.client_context(alpn=["h2", "http/1.1"])
    alpn, first_header_byte = await h2_get(ingress.https, "secure.test", "/h2", ctx)
    assert alpn == "h2"
    assert first_header_byte == 0x88  # HPACK's indexed ":status: 200"


async def test_a_websocket_passes_through(ingress: Ingress) -> None:
    async with client() as s, s.ws_connect(ingress.url("app.test", "/api/ws")) as ws:
        for text in ("hello", "again"):
            await ws.send_str(text)
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.data == f"c:{text}"


async def test_forwarded_headers_come_from_the_connection_not_the_client(ingress: Ingress) -> None:
    spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "X-Forwarded-Host": "evil"}
    async with client() as s:
        status, body = await get_json(s, ingress.url("app.test", "/api/h"), headers=spoofed)
    assert status == 200
    headers = body["headers"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "app.test"
    assert headers["host"] == "app.test"


async def test_an_http01_challenge_is_answered_for_any_host_without_redirect(
    ingress: Ingress,
) -> None:
    path = "/.well-known/acme-challenge/tok-1"
    async with client() as s:
        for host in ("unknown.test", "secure.test", "app.test"):
            async with s.get(ingress.url(host, path), allow_redirects=False) as r:
                assert (r.status, await r.text()) == (200, "tok-1.thumbprint")
        async with s.get(ingress.url("secure.test", path + "x"), allow_redirects=False) as r:
            assert r.status == 404
        # A token as long as the CAs' (43 characters): its key outgrows nginx's default bucket.
        long_path = f"/.well-known/acme-challenge/{LONG_TOKEN}"
        async with s.get(ingress.url("app.test", long_path), allow_redirects=False) as r:
            assert (r.status, await r.text()) == (200, f"{LONG_TOKEN}.thumbprint")


async def test_an_upstream_over_https_is_verified(ingress: Ingress) -> None:
    async with client() as s:
        status, body = await get_json(s, ingress.url("app.test", "/internal/x"))
        assert (status, body["upstream"]) == (200, "tls")
        # The same upstream under a name its certificate does not carry: refused.
        status, _ = await get_json(s, ingress.url("app.test", "/wrong-name/x"))
        assert status == 502


async def test_large_bodies_stream_both_ways(ingress: Ingress) -> None:
    """Workers run as nobody and cannot enter the prefix: nothing may spill to temp files."""
    async with client() as s:
        async with s.post(ingress.url("app.test", "/api/up"), data=b"z" * 3_000_000) as r:
            assert r.status == 200 and (await r.json())["received"] == 3_000_000
        async with s.get(ingress.url("app.test", "/api/big")) as r:
            assert r.status == 200 and len(await r.read()) == 5_000_000


async def test_the_access_log_is_aggregated_per_host(ingress: Ingress) -> None:
    reader = AccessLogReader(ingress.sup.paths.access_log, from_start=True)
    async with client() as s:
        for _ in range(7):
            assert (await get_json(s, ingress.url("metrics.test", "/ok")))[0] == 200
        for _ in range(2):
            assert (await get_json(s, ingress.url("metrics.test", "/none")))[0] == 503
        assert (await get_json(s, ingress.url("nobody-serves.test", "/")))[0] == 404

    async def counted() -> dict[str, dict[str, object]]:
        await asyncio.to_thread(reader.poll)
        snap = reader.snapshot()
        assert snap.get("metrics.test", {}).get("requests") == 9
        return snap

    snap = await eventually(counted, timeout=10)
    metrics = snap["metrics.test"]
    assert metrics["responses"] == {"1xx": 0, "2xx": 7, "3xx": 0, "4xx": 0, "5xx": 2}
    assert isinstance(metrics["bytes_sent"], int) and metrics["bytes_sent"] > 9 * 100
    assert metrics["upstream_p50_ms"] is not None and metrics["upstream_p99_ms"] is not None
    assert snap["_"]["responses"]["4xx"] >= 1  # unknown hosts share one entry


async def test_prefix_files_are_private(ingress: Ingress) -> None:
    paths = ingress.sup.paths
    for directory in paths.dirs():
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    keys = list(paths.certs_dir.glob("*.key"))
    assert paths.fallback_key in keys and len(keys) == 2  # fallback + secure.test
    for path in keys + list(paths.certs_dir.glob("*.crt")):
        assert path.stat().st_mode & 0o777 == 0o600, path
        assert "secure.test" in path.name or path.name.startswith("fallback")
    text = paths.live_conf.read_text()
    for outside in ("/etc/nginx", "/var/log/nginx", "/var/lib/nginx"):
        assert outside not in text


async def test_an_access_log_truncated_by_its_reader_keeps_being_counted(
    ingress: Ingress,
) -> None:
    log = ingress.sup.paths.access_log
    reader = AccessLogReader(log, truncate_above=1)

    async def requests(n: int) -> None:
        async with client() as s:
            for _ in range(n):
                assert (await get_json(s, ingress.url("metrics.test", "/t")))[0] == 200

    async def counted(n: int) -> None:
        await asyncio.to_thread(reader.poll)
        stats = reader.stats("metrics.test")
        assert stats is not None and stats.requests == n

    await requests(3)
    await eventually(lambda: counted(3))
    assert log.stat().st_size == 0  # read to its end, then truncated in place
    await requests(2)
    await eventually(lambda: counted(5))
