"""An ``IngressConfig`` as nginx configuration: a pure, deterministic function.

The same input always gives the same text (sites sorted by host, routes by
path, upstreams sorted and deduplicated), so the supervisor can compare a
render with the running one and skip reloads that would change nothing.
Every value inserted was checked (``agent.ingress.checks``) against a grammar
without nginx syntax; ``render`` checks the whole config again before writing
a line.

Behaviour, as users expect it from Caddy, Traefik or ingress-nginx:

* HTTP redirects to HTTPS (308) for TLS sites that have a certificate, except
  ``/.well-known/acme-challenge/``; challenges are answered for any host on
  the HTTP listener, from one ``map`` over the URI.
* HTTPS with HTTP/2; websockets (``Upgrade`` passed on, a long read
  timeout); upstream keepalive (HTTP/1.1, ``Connection ""`` unless upgrading).
* ``X-Forwarded-For``, ``X-Real-IP``: the client's address, overwriting what
  the client sent; with PROXY protocol, the address its header carries when
  it comes from a trusted proxy. ``X-Forwarded-Proto``/``-Host`` as received.
* A route is a path prefix matched segment-wise (``/api`` matches ``/api``
  and ``/api/x``, not ``/apix``); nginx's longest prefix wins. Its upstreams
  are balanced round-robin with passive failover: a refused or timed-out
  connection moves on to the next upstream and benches the dead one.
* No upstreams: our 503 page. Unknown host: our 404 page, over HTTPS too
  (a default server with a self-signed fallback certificate).
* Bodies stream (no temp files) and pages are inline, so nginx's workers
  (``nobody`` when root) never touch the prefix (see ``agent.ingress.paths``).
* While a tls-alpn-01 challenge is pending (and only then), a ``stream {}``
  front takes the HTTPS port and the http TLS servers move behind it to a
  unix socket (``agent.ingress.render_stream``); it needs the stream module
  (``stream``: where it is, from the probe).
"""

from __future__ import annotations

from pathlib import Path

from agent.ingress import checks
from agent.ingress.model import IngressConfig, Listeners, Route, Site, StreamModule
from agent.ingress.paths import TEMP_DIRS, Paths
from agent.ingress.render_stream import stream_block

__all__ = ["render", "error_pages_conf", "upstream_name", "LOG_FORMAT_FIELDS"]

ACME_PREFIX = "/.well-known/acme-challenge/"
# The JSON access log's fields (agent.ingress.access_log reads them; `pid`,
# the worker's, tells which configuration served a request: a reload's old
# workers finish theirs while the new ones take new connections).
LOG_FORMAT_FIELDS = (
    '"msec":$msec,"host":"$server_name","status":$status,"bytes_sent":$bytes_sent,'
    '"request_length":$request_length,"request_time":$request_time,'
    '"upstream_response_time":"$upstream_response_time","upstream_addr":"$upstream_addr",'
    '"method":"$request_method","pid":$pid'
)
_PAGES = {
    404: ("Not Found", "no site or route here"),
    502: ("Bad Gateway", "no upstream answered"),
    503: ("Service Unavailable", "no healthy allocation serves this route"),
    504: ("Gateway Timeout", "the upstream did not answer in time"),
}


def render(config: IngressConfig, paths: Paths, stream: StreamModule | None = None) -> str:
    """The whole ``nginx.conf`` for ``config`` with every path in ``paths``;
    ``stream`` is needed (only) when tls-alpn-01 challenges are pending."""
    config.validate()
    hop = _hop(config, paths, stream)
    sites = sorted(config.sites, key=lambda s: s.host)
    lines: list[str] = ["# HeroCtl ingress, rendered by agent/ingress/render.py: do not edit."]
    if hop is not None and stream is not None and stream.load is not None:
        lines.append(f"load_module {stream.load};")
    lines += _main(config.listeners, paths)
    lines.append("http {")
    lines += _indent(_http_settings(config, paths, sites, hop))
    for index, site in enumerate(sites):
        for route_index, route in enumerate(_sorted_routes(site)):
            if route.upstreams:
                lines += _indent(_upstream(upstream_name(index, route_index), site, route))
    lines += _indent(_default_servers(config.listeners, paths, hop))
    for index, site in enumerate(sites):
        lines += _indent(_site_servers(index, site, config.listeners, paths, hop))
    lines.append("}")
    if hop is not None:
        lines += stream_block(config, paths)
    return "\n".join(lines) + "\n"


def _hop(config: IngressConfig, paths: Paths, stream: StreamModule | None) -> Path | None:
    """The unix socket the http TLS servers listen on behind the tls-alpn-01
    hop, or None: no challenge pending, they listen on the HTTPS port."""
    if not config.alpn_challenges:
        return None
    if stream is None:
        raise ValueError("tls-alpn-01 challenges need nginx's stream module")
    problem = paths.socket_problem()
    if problem is not None:
        raise ValueError(f"tls-alpn-01 challenges cannot be served: {problem}")
    return paths.https_socket


def upstream_name(site_index: int, route_index: int) -> str:
    """The ``upstream`` block of a route: positions in the sorted config."""
    return f"u{site_index}_{route_index}"


def error_pages_conf() -> str:
    """Our error pages, included by every server: ``error_page`` sends nginx's
    own 404/502/503/504 to an internal location that answers HTML, or JSON
    when the client asks for it. Upstreams' own error responses pass through."""
    lines: list[str] = []
    for code in _PAGES:
        lines.append(f"error_page {code} /__heroctl/{code}.$heroctl_page;")
    for code, (title, detail) in _PAGES.items():
        html = (
            f"<!doctype html><html><head><title>{code} {title}</title></head><body>"
            f"<h1>{code} {title}</h1><p>HeroCtl ingress: {detail}.</p></body></html>\\n"
        )
        json = f'{{\\"error\\":\\"{detail}\\",\\"status\\":{code}}}\\n'
        for ext, ctype, body in (("html", "text/html", html), ("json", "application/json", json)):
            lines.append(f"location = /__heroctl/{code}.{ext} {{")
            lines.append(f'    internal; default_type {ctype}; return {code} "{body}";')
            lines.append("}")
    return "\n".join(lines) + "\n"


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line if line else line for line in lines]


def _sorted_routes(site: Site) -> list[Route]:
    return sorted(site.routes, key=lambda r: checks.canonical_route_path(r.path))


def _main(listeners: Listeners, paths: Paths) -> list[str]:
    lines = []
    if paths.worker_user is not None:
        lines.append(f"user {paths.worker_user};")
    lines += [
        f"worker_processes {listeners.worker_processes};",
        f"pid {paths.pid_file};",
        f"error_log {paths.error_log} notice;",
        "worker_rlimit_nofile 16384;",
        # Bounds how long old workers keep connections (websockets) after a reload.
        "worker_shutdown_timeout 60s;",
        "events {",
        "    worker_connections 4096;",
        "}",
    ]
    return lines


def _http_settings(
    config: IngressConfig, paths: Paths, sites: list[Site], hop: Path | None
) -> list[str]:
    longest = max((len(s.host) for s in sites), default=0)
    bucket = 64
    while bucket < longest + 32:
        bucket *= 2
    # The challenges' map is keyed by `/.well-known/acme-challenge/<token>`
    # (71 characters for the 43-character tokens CAs issue): size its bucket
    # like the server names', or nginx refuses the whole configuration.
    longest_key = max((len(t) for t in config.challenges), default=0) + len(ACME_PREFIX)
    map_bucket = 64
    while map_bucket < longest_key + 32:
        map_bucket *= 2
    lines = [f"{directive} {paths.temp_path(directive)};" for directive in TEMP_DIRS]
    lines += [
        "server_tokens off;",
        "default_type application/octet-stream;",
        "sendfile on;",
        "tcp_nodelay on;",
        "keepalive_timeout 75s;",
        "client_max_body_size 0;",
        f"server_names_hash_bucket_size {bucket};",
        f"server_names_hash_max_size {max(1024, 4 * len(sites))};",
        f"map_hash_bucket_size {map_bucket};",
        f"log_format heroctl escape=json '{{{LOG_FORMAT_FIELDS}}}';",
        f"access_log {paths.access_log} heroctl buffer=64k flush=1s;",
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        "    '' '';",
        "}",
        "map $http_accept $heroctl_page {",
        "    default html;",
        '    "~*application/json" json;',
        "}",
        "map $uri $heroctl_acme {",
        '    default "";',
    ]
    for token in sorted(config.challenges):
        key_authorization = config.challenges[token]
        lines.append(f'    "{ACME_PREFIX}{token}" "{key_authorization}";')
    lines.append("}")
    trusted = list(config.listeners.trusted_proxies) if config.listeners.proxy_protocol else []
    if hop is not None:
        trusted.append("unix:")  # the hop's header carries the client's address
    lines += [f"set_real_ip_from {source};" for source in trusted]
    if config.listeners.proxy_protocol or hop is not None:
        lines.append("real_ip_header proxy_protocol;")
    lines += [
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_cache shared:heroctl_tls:10m;",
        "ssl_session_timeout 1d;",
        "ssl_session_tickets off;",
        "proxy_http_version 1.1;",
        "proxy_set_header Host $host;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_connect_timeout 3s;",
        "proxy_send_timeout 3600s;",
        "proxy_read_timeout 3600s;",
        "proxy_next_upstream error timeout;",
        "proxy_next_upstream_timeout 15s;",
        "proxy_request_buffering off;",
        "proxy_max_temp_file_size 0;",
    ]
    return lines


def _upstream(name: str, site: Site, route: Route) -> list[str]:
    lines = [f"upstream {name} {{", f"    # {site.host} {route.path}"]
    lines += [f"    server {u} max_fails=1 fail_timeout=10s;" for u in sorted(set(route.upstreams))]
    lines += ["    keepalive 16;", "    keepalive_timeout 60s;", "}"]
    return lines


def _listen(listeners: Listeners, *, https: bool, default: bool, hop: Path | None = None) -> str:
    """A server's ``listen``; behind the hop, the HTTPS servers' is its unix socket."""
    behind_hop = https and hop is not None
    if behind_hop:
        options = [f"unix:{hop}"]
    else:
        options = [listeners.address(listeners.https_port if https else listeners.http_port)]
    if default:
        options.append("default_server")
    if https:
        options += ["ssl", "http2"]
    if listeners.proxy_protocol or behind_hop:
        options.append("proxy_protocol")
    return f"listen {' '.join(options)};"


def _acme_location() -> list[str]:
    return [
        f"location ^~ {ACME_PREFIX} {{",
        "    default_type text/plain;",
        '    if ($heroctl_acme = "") {',
        "        return 404;",
        "    }",
        "    return 200 $heroctl_acme;",
        "}",
    ]


def _default_servers(listeners: Listeners, paths: Paths, hop: Path | None) -> list[str]:
    include = f"include {paths.pages_conf};"
    return [
        "server {",
        "    " + _listen(listeners, https=False, default=True),
        "    server_name _;",
        "    " + include,
        *_indent(_acme_location()),
        "    location / {",
        "        return 404;",
        "    }",
        "}",
        "server {",
        "    " + _listen(listeners, https=True, default=True, hop=hop),
        "    server_name _;",
        f"    ssl_certificate {paths.fallback_cert};",
        f"    ssl_certificate_key {paths.fallback_key};",
        "    " + include,
        "    location / {",
        "        return 404;",
        "    }",
        "}",
    ]


def _site_servers(
    index: int, site: Site, listeners: Listeners, paths: Paths, hop: Path | None
) -> list[str]:
    head = [f"server_name {site.host};", f"include {paths.pages_conf};"]
    routes = _route_locations(index, site)
    http = ["server {", "    " + _listen(listeners, https=False, default=False)]
    http += _indent(head) + _indent(_acme_location())
    if not site.serves_https:
        return http + _indent(routes) + ["}"]
    port = "" if listeners.https_port == 443 else f":{listeners.https_port}"
    http += [
        "    location / {",
        f"        return 308 https://$host{port}$request_uri;",
        "    }",
        "}",
    ]
    assert site.cert_pem is not None and site.key_pem is not None
    cert_file, key_file = paths.site_cert_files(site.host, site.cert_pem, site.key_pem)
    https = ["server {", "    " + _listen(listeners, https=True, default=False, hop=hop)]
    https += _indent(head)
    https += [f"    ssl_certificate {cert_file};", f"    ssl_certificate_key {key_file};"]
    return http + https + _indent(routes) + ["}"]


def _route_locations(index: int, site: Site) -> list[str]:
    lines: list[str] = []
    has_root = False
    for route_index, route in enumerate(_sorted_routes(site)):
        path = checks.canonical_route_path(route.path)
        body = _route_body(upstream_name(index, route_index), route)
        if path == "/":
            has_root = True
            lines += ['location "/" {', *body, "}"]
        else:
            lines += [f'location = "{path}" {{', *body, "}"]
            lines += [f'location "{path}/" {{', *body, "}"]
    if not has_root:
        lines += ["location / {", "    return 404;", "}"]
    return lines


def _route_body(name: str, route: Route) -> list[str]:
    if not route.upstreams:
        return ["    return 503;"]
    if not route.upstream_tls:
        return [f"    proxy_pass http://{name};"]
    server_name = route.upstream_server_name or "$host"
    return [
        f"    proxy_pass https://{name};",
        "    proxy_ssl_verify on;",
        f'    proxy_ssl_trusted_certificate "{route.upstream_ca_file}";',
        "    proxy_ssl_verify_depth 4;",
        "    proxy_ssl_server_name on;",
        f"    proxy_ssl_name {server_name};",
        "    proxy_ssl_session_reuse on;",
    ]
