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
    StreamModule,
    checks,
    render,
)
from agent.ingress.files import (
    prepare_prefix,
    prepare_sockets_dir,
    remove_sockets_dir,
    write_site_certs,
)
from agent.ingress.probe import probe, stream_support

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


# --- tls-alpn-01: the stream hop, rendered only while a challenge is pending -------------


def _alpn_pair(host: str) -> tuple[str, str]:
    from heroctld.controllers.acme.challenges import tls_alpn01_certificate  # noqa: PLC0415

    return tls_alpn01_certificate(host, f"tok-{host}.thumb")


STREAM = StreamModule("/usr/lib/nginx/modules/ngx_stream_module.so")


def test_no_pending_tls_alpn_challenge_renders_no_stream_block(tmp_path: Path) -> None:
    text = render(_sample(), _paths(tmp_path), STREAM)
    assert "stream {" not in text and "load_module" not in text and "unix:" not in text
    assert text == render(_sample(), _paths(tmp_path))  # the module is not even needed


def test_a_pending_tls_alpn_challenge_puts_the_hop_in_front(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    pairs = {"b.test": _alpn_pair("b.test"), "a.test": _alpn_pair("a.test")}
    config = dataclasses.replace(_sample(), alpn_challenges=pairs)
    text = render(config, paths, STREAM)
    assert text.splitlines()[1] == f"load_module {STREAM.load};"
    assert "load_module" not in render(config, paths, StreamModule(None))  # built in
    stream = text[text.index("\nstream {") :]
    # The front takes the port (with the operator's PROXY protocol and trust).
    assert "listen 127.0.0.1:18443 proxy_protocol;" in stream
    assert "set_real_ip_from 10.0.0.0/8;" in stream and "set_real_ip_from ::1;" in stream
    assert f'"acme-tls/1 a.test" "unix:{paths.alpn_socket(0)}";' in stream
    assert f'"acme-tls/1 b.test" "unix:{paths.alpn_socket(1)}";' in stream
    assert f'default "unix:{paths.https_socket}";' in stream
    for host, index in (("a.test", 0), ("b.test", 1)):
        cert_file, key_file = paths.alpn_cert_files(host, *pairs[host])
        assert f"listen unix:{paths.alpn_socket(index)} ssl proxy_protocol;" in stream
        assert f"ssl_certificate {cert_file};" in stream and key_file.name.startswith("_alpn_.")
    # The http TLS servers listen behind it and believe its header.
    http = text[: text.index("\nstream {")]
    assert "listen 127.0.0.1:18443" not in http
    hop = f"listen unix:{paths.https_socket} default_server ssl http2 proxy_protocol;"
    assert hop in http and "set_real_ip_from unix:;" in http
    assert "BEGIN" not in text  # PEMs go to files, never into the configuration


def test_a_tls_alpn_challenge_needs_the_stream_module_and_a_short_socket_path(
    tmp_path: Path,
) -> None:
    config = dataclasses.replace(_sample(), alpn_challenges={"a.test": _alpn_pair("a.test")})
    with pytest.raises(ValueError, match="stream module"):
        render(config, _paths(tmp_path))
    deep = Paths(tmp_path / ("d" * 120) / "prefix")  # no root: the sockets are in the prefix
    assert deep.socket_problem() is not None
    with pytest.raises(ValueError, match="longer than 107 bytes"):
        render(config, deep, STREAM)
    as_root = Paths(tmp_path / ("d" * 120) / "prefix", "nobody nogroup")
    assert as_root.socket_problem() is None and str(as_root.sockets_dir).startswith("/run/")


@pytest.mark.parametrize(
    "pairs",
    [
        {"*.wild.test": ("-----BEGIN CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----")},
        {"a.test;": ("-----BEGIN CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----")},
        {"a.test": ("not a pem", "-----BEGIN PRIVATE KEY-----")},
        {"a.test": ("-----BEGIN CERTIFICATE-----",)},
    ],
)
def test_a_malformed_tls_alpn_challenge_raises(pairs: dict[str, tuple[str, ...]]) -> None:
    with pytest.raises(ValueError):
        IngressConfig(Listeners(), (), alpn_challenges=pairs)  # type: ignore[arg-type]


def test_real_nginx_accepts_the_hop(tmp_path: Path) -> None:
    found = probe()
    assert found.nginx is not None and found.stream is not None, found.stream_reason
    paths = Paths.in_prefix(tmp_path / "prefix")
    prepare_prefix(paths)
    prepare_sockets_dir(paths)
    try:
        pem = (paths.fallback_cert.read_text(), paths.fallback_key.read_text())
        alpn = {"a.test": _alpn_pair("a.test")}
        config = dataclasses.replace(_sample(pem), alpn_challenges=alpn)
        write_site_certs(config, paths)
        paths.live_conf.write_text(render(config, paths, found.stream))
        result = subprocess.run(
            [found.nginx, "-t", "-p", f"{paths.prefix}/", "-c", str(paths.live_conf)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert list(paths.sockets_dir.glob("*.sock")) == []  # nginx -t leaves none behind
    finally:
        remove_sockets_dir(paths)


def test_the_probe_finds_the_stream_module_or_says_why_not(tmp_path: Path) -> None:
    version = "nginx version: nginx/1.22.1\nconfigure arguments: --with-http_ssl_module"
    parts = " --with-stream_ssl_module --with-stream_ssl_preread_module --with-stream_realip_module"
    static = stream_support(f"{version} --with-stream{parts}", (1, 22, 1))
    assert static == (StreamModule(None), None)
    (tmp_path / "ngx_stream_module.so").write_bytes(b"")
    dynamic = f"{version} --modules-path={tmp_path} --with-stream=dynamic{parts}"
    assert stream_support(dynamic, (1, 22, 1)) == (
        StreamModule(str(tmp_path / "ngx_stream_module.so")),
        None,
    )
    elsewhere = dynamic.replace(str(tmp_path), str(tmp_path / "none"))
    _, why = stream_support(elsewhere, (1, 22, 1))
    assert why is not None and "stream module" in why and "is not installed" in why
    assert "older than 1.21.4" in str(stream_support(dynamic, (1, 20, 2))[1])
    assert "without the stream module" in str(stream_support(version, (1, 22, 1))[1])
    assert "stream_ssl_preread_module" in str(
        stream_support(dynamic.replace(" --with-stream_ssl_preread_module", ""), (1, 22, 1))[1]
    )
