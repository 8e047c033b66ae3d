"""The web panel's files at /ui/ from a real server: no credential needed,
client routes get the app, hashed assets are cached long and gzip-compressed,
nothing outside the build is served; without a build, a clear 503 page."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.authutil import assert_error, call
from tests.support.cluster import Cluster, Server


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """A server with this checkout's build (if any) and one pointed at an empty folder."""
    root: Path = tmp_path_factory.mktemp("panel-files")
    (root / "built").mkdir()
    (root / "none").mkdir()
    (root / "empty").mkdir()
    built = Cluster(root / "built", 1).start()
    unbuilt = Cluster(root / "none", 1, env={"HEROCTL_UI_DIR": str(root / "empty")}).start()
    try:
        yield built.servers[0], unbuilt.servers[0]
    finally:
        built.stop()
        unbuilt.stop()


def test_no_build_is_a_clear_503(servers: tuple[Server, Server]) -> None:
    server = servers[1]
    r = call(server, "GET", "/ui/")
    assert r.reply.status == 503
    assert b"make install" in r.reply.raw
    assert (r.reply.header("Content-Type") or "").startswith("text/html")
    assert server.get("/v1/health/ready").status == 200  # the daemon runs as usual


def test_panel_files(servers: tuple[Server, Server]) -> None:
    """Served without a credential; no build is a 503 page (the API still works)."""
    server = servers[0]
    r = call(server, "GET", "/ui/")
    if r.reply.status == 503:  # this checkout has no build: the clear page
        assert b"make install" in r.reply.raw
        assert (r.reply.header("Content-Type") or "").startswith("text/html")
        return
    assert r.reply.status == 200, r.reply.raw[:200]
    assert r.reply.header("Cache-Control") == "no-cache"
    assert "default-src 'self'" in (r.reply.header("Content-Security-Policy") or "")
    deep = call(server, "GET", "/ui/jobs/web")  # a client route: the same app
    assert deep.reply.raw == r.reply.raw
    # the root (https://manage.<domain>/ through the ingress) leads to the panel
    assert call(server, "GET", "/").reply.raw == r.reply.raw
    html = r.reply.raw.decode()
    asset = html.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("/ui/assets/"), asset
    js = call(server, "GET", asset, headers={"Accept-Encoding": "gzip"})
    assert js.reply.status == 200
    assert js.reply.header("Content-Encoding") == "gzip"
    assert "immutable" in (js.reply.header("Cache-Control") or "")
    assert len(gzip.decompress(js.reply.raw)) > len(js.reply.raw)
    assert_error(call(server, "GET", "/ui/assets/nope.js").reply, 404)
    escape = call(server, "GET", "/ui/%2e%2e/%2e%2e/pyproject.toml")  # never outside the build
    assert b"[project]" not in escape.reply.raw
