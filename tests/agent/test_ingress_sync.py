"""The agent's ingress: the render model as an ``IngressConfig`` (a pure
function), and the agent itself with a real nginx, fed by the fake control
plane (tests/agent/control_plane.py), in front of real aiohttp upstreams, all
on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.agent import Agent
from agent.config import AgentConfig
from agent.ingress import Listeners, Route, Site
from agent.ingress_sync import ingress_config, reachable_upstream
from heroctld.controllers.acme.challenges import tls_alpn01_certificate
from tests.agent.control_plane import FakeControlPlane, config, until
from tests.agent.ingress.support import (
    TestCA,
    Upstream,
    client,
    eventually,
    free_port,
    get_json,
    processes_holding,
    start_upstream,
)

LISTENERS = Listeners("127.0.0.1", 18080, 18443, worker_processes=1)
CHALLENGE = ("tok-1_A", "tok-1_A.thumbprint-xyz")


def site(host: str, *upstreams: str, path: str = "/", **extra: Any) -> dict[str, Any]:
    route = {"path": path, "upstreams": list(upstreams)}
    return {
        "host": host,
        "tls": False,
        "cert_pem": None,
        "key_pem": None,
        "routes": [route],
    } | extra


# --- the model as an IngressConfig ---------------------------------------------------


def test_the_model_becomes_sites_routes_and_challenges() -> None:
    model = {
        "sites": [
            site("b.test", "10.0.0.9:21002", "10.0.0.8:21001"),
            {
                "host": "a.test",
                "tls": True,
                "cert_pem": None,
                "key_pem": None,
                "routes": [
                    {"path": "/", "upstreams": []},
                    {"path": "/api", "upstreams": ["10.0.0.8:21003"]},
                ],
            },
        ],
        "challenges": {CHALLENGE[0]: CHALLENGE[1]},
    }
    got, problems = ingress_config(model, LISTENERS)
    assert problems == []
    assert got.listeners == LISTENERS
    assert got.sites == (
        Site("b.test", (Route("/", ("10.0.0.8:21001", "10.0.0.9:21002")),), tls=False),
        Site("a.test", (Route("/", ()), Route("/api", ("10.0.0.8:21003",))), tls=True),
    )
    assert dict(got.challenges) == {CHALLENGE[0]: CHALLENGE[1]}


def test_this_nodes_allocations_are_reached_where_their_ports_are_published() -> None:
    model = {"sites": [site("a.test", "10.0.0.5:21000", "10.0.0.6:21000", "fd00::7:21001")]}
    got, problems = ingress_config(model, LISTENERS, local=("10.0.0.5", "127.0.0.1"))
    assert problems == []
    assert got.sites[0].routes[0].upstreams == (
        "10.0.0.6:21000",
        "127.0.0.1:21000",
        "[fd00::7]:21001",
    )
    # Published on every address: the advertised one reaches them.
    assert reachable_upstream("10.0.0.5:21000", "10.0.0.5", "0.0.0.0") == "10.0.0.5:21000"
    assert reachable_upstream("[::1]:80", "::1", "::1") == "[::1]:80"


def test_the_api_domain_reaches_the_servers_over_https_verified_by_the_cluster_ca() -> None:
    api = site("manage.example.com", "10.0.0.5:7070", "10.0.0.6:7070", tls=True)
    api["routes"][0] |= {"upstream_tls": True, "upstream_server_name": "heroctl-api.internal"}
    got, problems = ingress_config(
        {"sites": [api]}, LISTENERS, ca_file="/data/tls/ca.pem", local=("10.0.0.5", "127.0.0.1")
    )
    assert problems == []
    (route,) = got.sites[0].routes
    assert route == Route(
        "/",
        ("10.0.0.5:7070", "10.0.0.6:7070"),  # the servers' API addresses, as they are
        upstream_tls=True,
        upstream_ca_file="/data/tls/ca.pem",
        upstream_server_name="heroctl-api.internal",
    )
    # Without the cluster CA the route cannot be verified: left out, and said so.
    got, problems = ingress_config({"sites": [api]}, LISTENERS, ca_file=None)
    assert got.sites[0].routes == ()
    assert len(problems) == 1 and "no cluster CA" in problems[0]


def test_what_nginx_must_not_be_given_is_left_out_and_named_never_a_key() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nSECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"
    model = {
        "sites": [
            site("good.test", "10.0.0.1:80"),
            site("BAD HOST;", "10.0.0.1:80"),
            site("key-only.test", "10.0.0.1:80", tls=True, key_pem=key),
            site("dollar.test", "10.0.0.1:80", path="/$uri"),
            site("upstream.test", "10.0.0.1:80", "evil;host:80", "10.0.0.2:99999"),
            site("good.test", "10.0.0.3:80"),
            site("pem.test", "10.0.0.1:80", tls=True, cert_pem={"not": "pem"}, key_pem=key),
            "not a site",
        ],
        "challenges": {"tok": "ok.thumb", "bad token;": "x", "tok2": "bad key auth"},
    }
    got, problems = ingress_config(model, LISTENERS)
    assert [s.host for s in got.sites] == ["good.test", "dollar.test", "upstream.test"]
    assert got.sites[0].routes[0].upstreams == ("10.0.0.1:80",)
    assert got.sites[1].routes == ()  # the route nginx could not take, the site stays
    assert got.sites[2].routes[0].upstreams == ("10.0.0.1:80",)
    assert dict(got.challenges) == {"tok": "ok.thumb"}
    text = "\n".join(problems)
    for expected in (
        "'BAD HOST;'",
        "'key-only.test'",
        "dollar.test/$uri",
        "evil;host:80",
        "10.0.0.2:99999",
        "'good.test' left out: listed twice",
        "'pem.test' left out: cert_pem must be a PEM string",
        "'?' left out",
        "'bad token;'",
        "token 'tok2'",
    ):
        assert expected in text, (expected, text)
    assert "SECRET-KEY-MATERIAL" not in text


def test_tls_alpn_challenges_become_host_certificate_pairs_and_bad_ones_are_named() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nSECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"
    cert = "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n"
    model = {
        "sites": [],
        "alpn_challenges": {
            "a.test": {"cert_pem": cert, "key_pem": key},
            "*.wild.test": {"cert_pem": cert, "key_pem": key},
            "no-key.test": {"cert_pem": cert},
            "text.test": {"cert_pem": "not a certificate", "key_pem": key},
            "bad;host": {"cert_pem": cert, "key_pem": key},
            "flat.test": key,
        },
    }
    got, problems = ingress_config(model, LISTENERS)
    assert dict(got.alpn_challenges) == {"a.test": (cert, key)}
    text = "\n".join(problems)
    assert len(problems) == 5 and all("tls-alpn-01 challenge left out" in p for p in problems)
    for expected in ("wildcard", "key_pem", "text.test", "bad;host"):
        assert expected in text, (expected, text)
    assert "SECRET-KEY-MATERIAL" not in text and "MII=" not in text
    assert "SECRET-KEY-MATERIAL" not in repr(got)  # the keys stay out of reprs too


def test_a_model_that_is_not_one_serves_nothing() -> None:
    got, problems = ingress_config(["no"], LISTENERS)
    assert got.sites == () and dict(got.challenges) == {}
    assert problems == ["the ingress model has no list of sites"]


def test_the_listeners_come_from_the_agent_config(tmp_path: Path) -> None:
    base = config("127.0.0.1:1", tmp_path)
    assert base.ingress_listeners() is None  # 0 and 0: no ingress
    on = dataclasses.replace(
        base,
        ingress_http_port=8080,
        ingress_https_port=8443,
        ingress_bind="127.0.0.1",
        ingress_proxy_protocol=True,
        ingress_trusted_proxies=("10.0.0.0/8",),
        ingress_workers=2,
    )
    assert on.ingress_listeners() == Listeners("127.0.0.1", 8080, 8443, True, ("10.0.0.0/8",), 2)
    with pytest.raises(ValueError, match="both an HTTP and an HTTPS port"):
        dataclasses.replace(base, ingress_http_port=8080)
    with pytest.raises(ValueError, match="trusted_proxies only apply with proxy_protocol"):
        dataclasses.replace(
            base, ingress_http_port=1, ingress_https_port=2, ingress_trusted_proxies=("10.0.0.0/8",)
        )
    with pytest.raises(ValueError, match="must differ"):
        dataclasses.replace(base, ingress_http_port=8080, ingress_https_port=8080)


# --- the agent with a real nginx ---------------------------------------------------------


def ingress_agent_config(address: str, data_dir: Path, **kw: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "ingress_http_port": free_port(),
        "ingress_https_port": free_port(),
        "ingress_bind": "127.0.0.1",
        "ingress_workers": 1,
        "ingress_stats_interval": 0.1,
    }
    return dataclasses.replace(config(address, data_dir), **(values | kw))


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, Upstream]]:
    ups: dict[str, Upstream] = {}
    try:
        for name in ("a", "b"):
            ups[name] = await start_upstream(name)
        yield ups
    finally:
        for up in ups.values():
            await up.close()


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_the_agent_serves_the_model_with_nginx_and_stops_it(
    plane: tuple[FakeControlPlane, str], tmp_path: Path, upstreams: dict[str, Upstream]
) -> None:
    cp, address = plane
    cfg = ingress_agent_config(address, tmp_path)
    port = cfg.ingress_http_port
    agent = Agent(cfg, drivers={})
    await agent.start()
    prefix = agent.ingress.prefix
    try:
        await until(lambda: agent.registered.is_set())
        assert cp.registrations[0]["ingress"] == {
            "enabled": True,
            "reason": None,
            "http_port": cfg.ingress_http_port,
            "https_port": cfg.ingress_https_port,
            "error": None,
        }
        async with client() as s:
            # Before any site: our 404 for every host.
            status, body = await get_json(s, f"http://app.test:{port}/")
            assert status == 404 and "no site or route here" in body

            cp.set_ingress([site("app.test", upstreams["a"].address)], {})

            async def served_by(name: str, host: str = "app.test") -> None:
                status, body = await get_json(s, f"http://{host}:{port}/x?y=1")
                assert status == 200 and body["upstream"] == name, body
                assert body["path"] == "/x?y=1"

            await eventually(lambda: served_by("a"))
            cp.set_ingress([site("app.test", upstreams["b"].address)], {})
            await eventually(lambda: served_by("b"))

            # An ACME http-01 challenge is answered on the HTTP port, for any host.
            cp.set_ingress([site("app.test", upstreams["b"].address)], dict([CHALLENGE]))

            async def answered() -> None:
                url = f"http://other.test:{port}/.well-known/acme-challenge/{CHALLENGE[0]}"
                status, body = await get_json(s, url)
                assert (status, body.strip()) == (200, CHALLENGE[1])

            await eventually(answered)
            assert (await get_json(s, f"http://unknown.test:{port}/"))[0] == 404

            # The cluster forgets the node: it registers again and the model still flows.
            cp.nodes.clear()
            await until(lambda: len(cp.registrations) >= 2)
            cp.set_ingress([site("app.test", upstreams["a"].address)], {})
            await eventually(lambda: served_by("a"))

        # The access log's numbers, per host.
        # (read every few seconds: wait until the reader has caught up with all of them)
        def counted() -> bool:
            host = agent.ingress_stats().get("app.test") or {}
            return (host.get("requests") or 0) >= 3 and host["responses"]["2xx"] >= 3

        await until(counted)
        assert agent.ingress.status()["enabled"] is True
    finally:
        await agent.stop()
    assert processes_holding(prefix) == []
    assert refused(port)
    assert agent.ingress.status()["enabled"] is False


async def test_a_model_nginx_refuses_keeps_the_last_one_serving_and_is_reported(
    plane: tuple[FakeControlPlane, str],
    tmp_path: Path,
    upstreams: dict[str, Upstream],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cp, address = plane
    cfg = ingress_agent_config(address, tmp_path)
    port = cfg.ingress_http_port
    cert, key = TestCA(tmp_path).issue("secure.test")
    agent = Agent(cfg, drivers={})
    caplog.set_level(logging.INFO, logger="heroctl.agent")
    await agent.start()
    try:
        cp.set_ingress([site("app.test", upstreams["a"].address)], {})
        await until(lambda: agent.ingress.applied.is_set())
        async with client() as s:
            assert (await get_json(s, f"http://app.test:{port}/"))[0] == 200
            # A certificate nginx cannot load: the new model is refused as a whole.
            broken = site("secure.test", upstreams["b"].address, tls=True)
            broken |= {"cert_pem": "not a certificate", "key_pem": key}
            cp.set_ingress([site("app.test", upstreams["b"].address), broken], {})
            registered = await until(
                lambda: [r for r in cp.registrations if (r.get("ingress") or {}).get("error")]
            )
            error = registered[0]["ingress"]["error"]
            assert "certificate" in error and registered[0]["ingress"]["enabled"] is True
            assert agent.ingress.status()["error"] == error
            status, body = await get_json(s, f"http://app.test:{port}/")
            assert status == 200 and body["upstream"] == "a"  # the last good one serves
            # The same refusal again (another model change) is not logged again.
            handled = agent.ingress.models
            cp.set_ingress([site("app.test", upstreams["b"].address), broken], {"t": "t.k"})
            await until(lambda: agent.ingress.models > handled)
            # Fixed: served, and the node registers without the error.
            good = site("secure.test", upstreams["b"].address, tls=True)
            good |= {"cert_pem": cert, "key_pem": key}
            cp.set_ingress([site("app.test", upstreams["b"].address), good], {})
            await until(
                lambda: (
                    cp.registrations[-1]["ingress"]["error"] is None and len(cp.registrations) >= 3
                )
            )
            status, body = await get_json(s, f"http://app.test:{port}/")
            assert status == 200 and body["upstream"] == "b"
    finally:
        await agent.stop()
    refusals = [r for r in caplog.records if "nginx refused" in r.getMessage()]
    assert len(refusals) == 1
    everything = caplog.text + repr(cp.registrations)
    assert key.splitlines()[1] not in everything


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ingress_nginx": "/nonexistent/nginx"}, "nginx at /nonexistent/nginx does not run"),
        ({"ingress_http_port": 0, "ingress_https_port": 0}, "no ingress ports"),
        ({}, "nginx could not start"),  # the HTTP port is taken (below)
    ],
)
async def test_a_node_that_cannot_serve_the_ingress_runs_without_it_and_says_why(
    plane: tuple[FakeControlPlane, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, Any],
    reason: str,
) -> None:
    cp, address = plane
    cfg = ingress_agent_config(address, tmp_path, **change)
    caplog.set_level(logging.INFO, logger="heroctl.agent")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", cfg.ingress_http_port or free_port()))
        taken.listen()
        agent = Agent(cfg, drivers={})
        await agent.start()
        try:
            await until(lambda: len(cp.heartbeats) >= 2)  # the node runs on
            (registration,) = cp.registrations
            ingress = registration["ingress"]
            assert ingress["enabled"] is False and reason in ingress["reason"], ingress
            assert ingress["http_port"] == cfg.ingress_http_port
            assert cp.ingress_reads == 0
            assert agent.ingress_stats() == {}
        finally:
            await agent.stop()
    said = [r for r in caplog.records if "runs no ingress" in r.getMessage()]
    assert len(said) == 1 and reason in said[0].getMessage()
    assert processes_holding(agent.ingress.prefix) == []


# --- tls-alpn-01 through the agent ---------------------------------------------------------


async def acme_tls_certificate(port: int, host: str) -> bytes | None:
    """The certificate shown to a client offering only ``acme-tls/1`` (None: refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
    except (ssl.SSLError, ConnectionError):
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return bytes(der)
    finally:
        writer.close()


def der_of(cert_pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_pem)


def nginx_without_the_stream_module(folder: Path) -> str:
    """The real nginx, whose ``-V`` says its modules are where the stream
    module is not: the node Debian's nginx is without libnginx-mod-stream."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    empty = folder / "no-modules"
    empty.mkdir()
    wrapper = folder / "nginx-without-stream"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-V" ]; then\n'
        f"  {nginx} -V 2>&1 | sed 's|--modules-path=[^ ]*|--modules-path={empty}|' >&2\n"
        "  exit 0\n"
        "fi\n"
        f'exec {nginx} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


async def test_the_agent_answers_tls_alpn_01_while_the_model_has_the_challenge(
    plane: tuple[FakeControlPlane, str], tmp_path: Path, upstreams: dict[str, Upstream]
) -> None:
    cp, address = plane
    cfg = ingress_agent_config(address, tmp_path)
    cert_pem, key_pem = tls_alpn01_certificate("app.test", "tok.thumb")
    agent = Agent(cfg, drivers={})
    await agent.start()
    try:
        await until(lambda: agent.registered.is_set(), timeout=30)
        sites = [site("app.test", upstreams["a"].address)]
        alpn = {"app.test": {"cert_pem": cert_pem, "key_pem": key_pem}}
        cp.ingress = {"sites": sites, "challenges": {}, "alpn_challenges": alpn}
        cp.index += 1
        cp.changed.set()

        async def shown() -> None:
            assert await acme_tls_certificate(cfg.ingress_https_port, "app.test") == der_of(
                cert_pem
            )

        await eventually(shown, timeout=30)  # a loaded machine
        assert agent.ingress.status()["error"] is None
        cp.set_ingress(sites, {})  # retracted

        async def refused_again() -> None:
            assert await acme_tls_certificate(cfg.ingress_https_port, "app.test") is None

        await eventually(refused_again, timeout=30)
    finally:
        await agent.stop()


async def test_a_node_without_the_stream_module_serves_the_rest_and_says_so(
    plane: tuple[FakeControlPlane, str], tmp_path: Path, upstreams: dict[str, Upstream]
) -> None:
    cp, address = plane
    cfg = ingress_agent_config(
        address, tmp_path, ingress_nginx=nginx_without_the_stream_module(tmp_path)
    )
    cert_pem, key_pem = tls_alpn01_certificate("app.test", "tok.thumb")
    agent = Agent(cfg, drivers={})
    await agent.start()
    try:
        await until(lambda: agent.registered.is_set(), timeout=30)
        assert cp.registrations[0]["ingress"]["enabled"] is True  # http-01 works here
        sites = [site("app.test", upstreams["a"].address)]
        alpn = {"app.test": {"cert_pem": cert_pem, "key_pem": key_pem}}
        cp.ingress = {"sites": sites, "challenges": {}, "alpn_challenges": alpn}
        cp.index += 1
        cp.changed.set()
        registered = await until(
            lambda: [r for r in cp.registrations if (r.get("ingress") or {}).get("error")], 30
        )
        error = registered[0]["ingress"]["error"]
        assert "stream module" in error and "app.test" in error and "http-01 only" in error
        assert key_pem.splitlines()[1] not in error
        async with client() as s:  # the rest of the model is served
            status, body = await get_json(s, f"http://app.test:{cfg.ingress_http_port}/")
            assert status == 200 and body["upstream"] == "a"
        assert await acme_tls_certificate(cfg.ingress_https_port, "app.test") is None
        supervisor = agent.ingress.supervisor
        assert supervisor is not None and "stream {" not in supervisor.paths.live_conf.read_text()
        cp.set_ingress(sites, {})  # the challenge is over: nothing is missing any more
        await until(lambda: cp.registrations[-1]["ingress"]["error"] is None, 30)
    finally:
        await agent.stop()
