"""The supervisor's promises with a real nginx: check-then-reload, a refused
configuration never replaces a working one, restart after SIGKILL, nothing
left after close, several ingresses side by side."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from agent.ingress import IngressConfig, Listeners, NginxSupervisor, Route, Site
from agent.ingress.process import group_members
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

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[Upstream]:
    up = await start_upstream("one")
    try:
        yield up
    finally:
        await up.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def config(upstream: Upstream, listeners: Listeners, *sites: Site) -> IngressConfig:
    base = Site("one.test", (Route("/", (upstream.address,)),), tls=False)
    return IngressConfig(listeners, (base, *sites))


def listeners() -> Listeners:
    return Listeners("127.0.0.1", free_port(), free_port(), worker_processes=1)


@pytest_asyncio.fixture(loop_scope="module")
async def running(tmp_path: Path, upstream: Upstream) -> AsyncIterator[NginxSupervisor]:
    sup = NginxSupervisor(tmp_path / "ingress")
    try:
        await sup.start(config(upstream, listeners()))
        yield sup
    finally:
        await sup.close()
        assert processes_holding(sup.paths.prefix) == []


def port_of(sup: NginxSupervisor) -> int:
    text = sup.paths.live_conf.read_text()
    return int(text.split("listen 127.0.0.1:", 1)[1].split()[0])


async def served(sup: NginxSupervisor, host: str = "one.test", status: int = 200) -> None:
    async with client() as s:
        got, body = await get_json(s, f"http://{host}:{port_of(sup)}/")
    assert got == status, body


async def test_apply_reloads_a_changed_config_and_skips_an_identical_one(
    running: NginxSupervisor, upstream: Upstream
) -> None:
    current = config(upstream, listeners_of(running))
    result = await running.apply(current)
    assert (result.changed, result.error) == (False, None)
    assert running.status()["reloads"] == 0
    two = Site("two.test", (Route("/", (upstream.address,)),), tls=False)
    result = await running.apply(config(upstream, listeners_of(running), two))
    assert (result.changed, result.error) == (True, None)
    await served(running, "two.test")  # at once: the old workers no longer accept
    status = running.status()
    assert status["enabled"] is True and status["reloads"] == 1 and status["last_error"] is None
    assert status["pid"] == running.pid and status["last_applied"] is not None


def listeners_of(sup: NginxSupervisor) -> Listeners:
    text = sup.paths.live_conf.read_text()
    http, https = (
        int(line.split(":")[1].split()[0].rstrip(";"))
        for line in text.splitlines()
        if "default_server" in line
    )
    return Listeners("127.0.0.1", http, https, worker_processes=1)


async def test_a_certificate_that_does_not_parse_is_refused_and_the_old_config_serves(
    running: NginxSupervisor, upstream: Upstream, ca: TestCA
) -> None:
    cert, key = ca.issue("tls.test")
    good = Site("tls.test", (Route("/", (upstream.address,)),), True, cert, key)
    assert (await running.apply(config(upstream, listeners_of(running), good))).changed
    live = running.paths.live_conf.read_text()
    certs_before = sorted(running.paths.certs_dir.iterdir())

    broken = Site("tls.test", (Route("/", (upstream.address,)),), True, "not a cert", key)
    result = await running.apply(config(upstream, listeners_of(running), broken))
    assert not result.changed and result.error is not None
    assert "certificate" in result.error and key not in result.error
    assert running.status()["last_error"] == result.error
    assert running.paths.live_conf.read_text() == live
    assert sorted(running.paths.certs_dir.iterdir()) == certs_before  # no leftovers
    await served(running)

    # A new certificate replaces the old files once nginx runs with it.
    cert2, key2 = ca.issue("tls.test")
    renewed = Site("tls.test", (Route("/", (upstream.address,)),), True, cert2, key2)
    assert (await running.apply(config(upstream, listeners_of(running), renewed))).changed
    names = sorted(p.name for p in running.paths.certs_dir.iterdir())
    tls_files = [n for n in names if n.startswith("tls.test.")]
    assert len(tls_files) == 2 and not set(tls_files) & {p.name for p in certs_before}
    assert running.status()["last_error"] is None


async def test_an_invalid_model_is_refused_by_apply(
    running: NginxSupervisor, upstream: Upstream
) -> None:
    bad = config(upstream, listeners_of(running))
    # Bypass the dataclass's own check, as a buggy caller could: render checks again.
    object.__setattr__(bad.sites[0].routes[0], "path", "/x;} server { listen 1")
    result = await running.apply(bad)
    assert not result.changed and "invalid route path" in (result.error or "")
    await served(running)


async def test_a_reload_nginx_rejects_keeps_the_old_config(
    running: NginxSupervisor, upstream: Upstream
) -> None:
    """``nginx -t`` does not bind: a port taken by someone else fails the reload itself."""
    before = running.paths.live_conf.read_text()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        moved = Listeners("127.0.0.1", port, listeners_of(running).https_port, worker_processes=1)
        result = await running.apply(config(upstream, moved))
    assert not result.changed and "bind()" in (result.error or "")
    assert running.paths.live_conf.read_text() == before
    await served(running)


async def test_nginx_killed_with_sigkill_is_restarted(
    running: NginxSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.ingress.nginx")
    for attempt in (1, 2):  # the second death comes before nginx was up long: same streak
        old = running.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)

        async def restarted(old: int = old) -> None:
            assert running.pid not in (None, old)
            await served(running)

        await eventually(restarted, timeout=15)
        assert group_members(old) == []  # the old master's workers went with it
        assert running.status()["restarts"] == attempt
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "restarting" in warnings[0].getMessage()


async def test_close_stops_nginx_and_leaves_no_process(tmp_path: Path, upstream: Upstream) -> None:
    sup = NginxSupervisor(tmp_path / "ingress")
    await sup.start(config(upstream, listeners()))
    await served(sup)
    pid = sup.pid
    assert pid is not None and len(group_members(pid)) == 2  # master + one worker
    await sup.close()
    assert group_members(pid) == [] and processes_holding(sup.paths.prefix) == []
    assert sup.status()["enabled"] is False and sup.status()["pid"] is None


async def test_two_ingresses_run_side_by_side(tmp_path: Path, upstream: Upstream) -> None:
    sups = [NginxSupervisor(tmp_path / f"node{i}") for i in range(2)]
    try:
        for sup in sups:
            await sup.start(config(upstream, listeners()))
        for sup in sups:
            await served(sup)
        assert len({sup.pid for sup in sups}) == 2
    finally:
        await asyncio.gather(*(sup.close() for sup in sups))
    for sup in sups:
        assert processes_holding(sup.paths.prefix) == []


async def test_an_nginx_left_behind_by_a_dead_agent_is_reaped(
    tmp_path: Path, upstream: Upstream
) -> None:
    """An agent killed without closing leaves nginx holding the ports; the next start kills it."""
    same = config(upstream, listeners())
    first = NginxSupervisor(tmp_path / "ingress")
    await first.start(same)
    await first.close()
    nginx, _ = NginxSupervisor.probe()
    assert nginx is not None
    paths = first.paths
    orphan = subprocess.Popen(
        [nginx, "-p", f"{paths.prefix}/", "-c", str(paths.live_conf), "-g", "daemon off;"],
        start_new_session=True,
    )
    second = NginxSupervisor(tmp_path / "ingress")
    try:
        await eventually(lambda: served(first))  # the orphan serves
        await second.start(same)
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        assert group_members(orphan.pid) == []
        await served(second)
    finally:
        await second.close()
        if orphan.poll() is None:
            os.killpg(orphan.pid, signal.SIGKILL)
            orphan.wait()
    assert processes_holding(paths.prefix) == []


async def test_the_supervisor_caps_the_logs(tmp_path: Path, upstream: Upstream) -> None:
    """With no reader truncating it, the access log still stays under the hard cap."""
    sup = NginxSupervisor(tmp_path / "ingress", log_max_bytes=300, maintenance_interval=0.3)
    try:
        await sup.start(config(upstream, listeners()))
        for _ in range(5):
            await served(sup)
        sizes: list[int] = []

        async def grew_then_truncated() -> None:
            sizes.append(sup.paths.access_log.stat().st_size)
            assert max(sizes) > 300 and sizes[-1] == 0

        await eventually(grew_then_truncated)
        await served(sup)
        await eventually(lambda: _grew(sup.paths.access_log))  # nginx writes on at the start
        assert sup.paths.access_log.stat().st_size < 300
    finally:
        await sup.close()


async def _grew(path: Path) -> None:
    assert path.stat().st_size > 0


async def test_probe_names_the_binary_or_says_why_not(tmp_path: Path) -> None:
    path, reason = NginxSupervisor.probe()
    assert path is not None and "nginx 1." in reason
    missing, why = NginxSupervisor.probe(str(tmp_path / "no-nginx"))
    assert missing is None and "no-nginx" in why
    sup = NginxSupervisor(tmp_path / "x", nginx=str(tmp_path / "no-nginx"))
    assert sup.status()["enabled"] is False and "no-nginx" in sup.status()["reason"]
