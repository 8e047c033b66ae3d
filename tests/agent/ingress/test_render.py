"""The renderer and the model's checks: injection is refused, the output is
deterministic, stays inside the prefix, and real ``nginx -t`` accepts it."""

from __future__ import annotations

import dataclasses
import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.ingress import (
    IngressConfig,
    Listeners,
    NginxSupervisor,
    Paths,
    Route,
    Site,
    checks,
    render,
)
from agent.ingress.files import prepare_prefix

SAFE = set(string.ascii_letters + string.digits + "._~!&()*+,=:@/-")

BAD_HOSTS = [
    "a.test;",
    "a.test {",
    "evil.test\nserver",
    "a.test #",
    "$host",
    "a b.test",
    "",
    "-a.test",
    "a..test",
    "*.*.test",
    "a.test.",
    "A.TEST",
    "a.test'",
    'a.test"',
    "x" * 254,
]
BAD_PATHS = [
    "/x;",
    "/x{",
    "/x}",
    '/x"',
    "/x'",
    "/x y",
    "/$uri",
    "x",
    "/a/../b",
    "//a",
    "/a/./b",
    "/a%20b",
    "/#",
    "/a\n}",
    "/a\\b",
    "/__heroctl/x",
    "",
]
BAD_UPSTREAMS = [
    "127.0.0.1",
    "127.0.0.1:0",
    "127.0.0.1:99999",
    "127.0.0.1:80;",
    "evil:80 backup",
    "[zz]:80",
    "a b:80",
    "127.0.0.1:80\n",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_an_injected_host_raises(host: str) -> None:
    with pytest.raises(ValueError):
        Site(host, (Route("/", ()),), tls=False)


@pytest.mark.parametrize("path", BAD_PATHS)
def test_an_injected_path_raises(path: str) -> None:
    with pytest.raises(ValueError):
        Route(path, ())


@pytest.mark.parametrize("upstream", BAD_UPSTREAMS)
def test_a_malformed_upstream_raises(upstream: str) -> None:
    with pytest.raises(ValueError):
        Route("/", (upstream,))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Route("/", ("127.0.0.1:1",), True, "/ca.pem;x"),
        lambda: Route("/", ("127.0.0.1:1",), True, None),
        lambda: Route("/", ("127.0.0.1:1",), True, "/ca.pem", "bad name"),
        lambda: Listeners(bind="0.0.0.0; x"),
        lambda: Listeners(http_port=0),
        lambda: Listeners(http_port=80, https_port=80),
        lambda: Listeners(proxy_protocol=True, trusted_proxies=("10.0.0.0/8; evil",)),
        lambda: Listeners(trusted_proxies=("10.0.0.0/8",)),
        lambda: Listeners(worker_processes="auto; user root"),
        lambda: IngressConfig(Listeners(), (), {"../x": "k"}),
        lambda: IngressConfig(Listeners(), (), {"tok": 'k";'}),
        lambda: Site("a.test", (Route("/api", ()), Route("/api/", ())), tls=False),
        lambda: Site("a.test", (), tls=True, cert_pem="c"),
        lambda: Site("a.test", (), tls=False, cert_pem="c", key_pem="k"),
        lambda: IngressConfig(Listeners(), (Site("a.test", (), False), Site("a.test", (), False))),
    ],
)
def test_every_other_inserted_value_is_checked(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_render_checks_again_what_a_caller_slipped_past_the_model(tmp_path: Path) -> None:
    site = Site("a.test", (Route("/", ()),), tls=False)
    object.__setattr__(site, "host", "a.test; } server {")
    with pytest.raises(ValueError, match="invalid host"):
        render(_with(site), _paths(tmp_path))


def _with(site: Site) -> IngressConfig:
    config = IngressConfig(Listeners(), ())
    object.__setattr__(config, "sites", (site,))
    return config


@given(st.text(max_size=40))
def test_an_accepted_host_or_path_holds_only_safe_characters(text: str) -> None:
    for check in (checks.check_host, checks.check_route_path):
        try:
            check(text)
        except ValueError:
            continue
        assert set(text) <= SAFE


def _paths(tmp_path: Path, user: str | None = None) -> Paths:
    return Paths(tmp_path / "prefix", user)


def _sample(cert: tuple[str, str] | None = None) -> IngressConfig:
    sites = [
        Site(
            "app.test",
            (
                Route("/", ("127.0.0.1:8001", "127.0.0.1:8002")),
                Route("/api/v1", ("[::1]:8003", "localhost:8004")),
                Route("/off", ()),
                Route("/tls", ("127.0.0.1:8005",), True, "/etc/ssl/certs/ca-certificates.crt"),
            ),
            tls=False,
        ),
        Site("*.wild.test", (Route("/", ("127.0.0.1:8001",)),), tls=True),
    ]
    if cert:
        sites.append(Site("secure.test", (Route("/", ()),), True, *cert))
    listeners = Listeners(
        "127.0.0.1", 18080, 18443, proxy_protocol=True, trusted_proxies=("10.0.0.0/8", "::1")
    )
    return IngressConfig(listeners, tuple(sites), {"t0k": "t0k.thumb"})


def test_the_same_input_renders_the_same_text(tmp_path: Path) -> None:
    config = _sample()
    shuffled = dataclasses.replace(
        config,
        sites=tuple(
            dataclasses.replace(
                s,
                routes=tuple(
                    dataclasses.replace(r, upstreams=tuple(reversed(r.upstreams)))
                    for r in reversed(s.routes)
                ),
            )
            for s in reversed(config.sites)
        ),
    )
    paths = _paths(tmp_path)
    assert render(config, paths) == render(shuffled, paths)


def test_every_path_is_inside_the_prefix_and_user_only_as_root(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    text = render(_sample(), paths)
    named = {"pid", "error_log", "access_log", "include", "ssl_certificate", "ssl_certificate_key"}
    files = [
        words[1].rstrip(";")
        for words in map(str.split, text.splitlines())
        if words and (words[0] in named or words[0].endswith("_temp_path"))
    ]
    assert len(files) >= 5 + 4 and all(f.startswith(f"{paths.prefix}/") for f in files), files
    for outside in ("/etc/nginx", "/var/log/nginx", "/var/lib/nginx", " /run/"):
        assert outside not in text
    for directive in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"{directive}_temp_path {paths.prefix}/tmp/" in text
    assert "\nuser " not in text
    assert "\nuser nobody nogroup;" in render(_sample(), _paths(tmp_path, "nobody nogroup"))


def test_real_nginx_accepts_the_render(tmp_path: Path) -> None:
    nginx, _ = NginxSupervisor.probe()
    assert nginx is not None
    paths = Paths.in_prefix(tmp_path / "prefix")
    prepare_prefix(paths)
    pem = (paths.fallback_cert.read_text(), paths.fallback_key.read_text())
    config = _sample(pem)
    for file in paths.site_cert_files("secure.test", *pem):
        file.write_text(pem[0] if file.suffix == ".crt" else pem[1])
    paths.live_conf.write_text(render(config, paths))
    result = subprocess.run(
        [nginx, "-t", "-p", f"{paths.prefix}/", "-c", str(paths.live_conf)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_certificate_files_are_named_after_the_host_and_change_with_the_pair(
    tmp_path: Path,
) -> None:
    paths = _paths(tmp_path)
    crt, key = paths.site_cert_files("*.wild.test", "CERT", "KEY")
    assert crt.name.startswith("_wildcard_.wild.test.") and crt.suffix == ".crt"
    assert key.with_suffix(".crt") == crt and "KEY" not in key.name
    assert paths.site_cert_files("*.wild.test", "CERT", "KEY2")[1] != key
