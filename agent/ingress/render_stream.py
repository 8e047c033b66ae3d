"""The tls-alpn-01 hop: a ``stream {}`` front on the HTTPS port, rendered only
while a tls-alpn-01 challenge is pending.

An ACME tls-alpn-01 validator (RFC 8737) connects to port 443 offering only
the ALPN protocol ``acme-tls/1`` and expects a self-signed certificate for the
host it names. nginx's http module chooses a certificate by SNI alone and
refuses an ALPN protocol it does not speak, so it cannot answer; its stream
module can look at the ClientHello without terminating TLS
(``ssl_preread``). While a challenge is pending the HTTPS port belongs to a
stream server that reads the offered protocols and the name, and passes the
connection on, bytes untouched:

* exactly ``acme-tls/1`` for a host with a pending challenge: to a stream TLS
  server of that host alone (``ssl_alpn acme-tls/1``, nginx >= 1.21.4), which
  completes the handshake with the challenge certificate and closes;
* anything else: to the usual http TLS servers, which then listen on a unix
  socket (``Paths.https_socket``) instead of the port.

Both hops carry a PROXY protocol header, and the http side believes it from
``unix:`` only, so the client's address survives (``X-Real-IP``,
``X-Forwarded-For``, the access log). With the operator's ``[ingress]
proxy_protocol`` the front expects the load balancer's header and, as the http
listeners do without the hop, takes its address only from
``trusted_proxies`` (the stream realip module), then hands that address on.

No pending challenge: no ``stream {}``, no ``load_module``, no hop.
"""

from __future__ import annotations

from agent.ingress.model import IngressConfig
from agent.ingress.paths import Paths

__all__ = ["ACME_TLS_ALPN", "stream_block"]

ACME_TLS_ALPN = "acme-tls/1"


def stream_block(config: IngressConfig, paths: Paths) -> list[str]:
    """The ``stream {}`` block of the hop (the caller checked the config)."""
    listeners = config.listeners
    hosts = sorted(config.alpn_challenges)
    listen = f"listen {listeners.address(listeners.https_port)}"
    body = [
        # The validator offers acme-tls/1 alone; a browser never offers it.
        'map "$ssl_preread_alpn_protocols $ssl_preread_server_name" $heroctl_tls_hop {',
        f'    default "unix:{paths.https_socket}";',
    ]
    body += [
        f'    "{ACME_TLS_ALPN} {host}" "unix:{paths.alpn_socket(index)}";'
        for index, host in enumerate(hosts)
    ]
    body.append("}")
    if listeners.proxy_protocol:
        body += [f"set_real_ip_from {cidr};" for cidr in listeners.trusted_proxies]
        listen += " proxy_protocol"
    body += [
        "server {",
        f"    {listen};",
        "    ssl_preread on;",
        "    proxy_pass $heroctl_tls_hop;",
        "    proxy_protocol on;",
        "    proxy_connect_timeout 3s;",
        "    proxy_timeout 3600s;",  # as long as the http side's longest wait
        "}",
    ]
    for index, host in enumerate(hosts):
        cert_file, key_file = paths.alpn_cert_files(host, *config.alpn_challenges[host])
        body += [
            "server {",
            f"    # tls-alpn-01 {host}",
            f"    listen unix:{paths.alpn_socket(index)} ssl proxy_protocol;",
            "    ssl_protocols TLSv1.2 TLSv1.3;",
            f"    ssl_alpn {ACME_TLS_ALPN};",
            f"    ssl_certificate {cert_file};",
            f"    ssl_certificate_key {key_file};",
            '    return "";',
            "}",
        ]
    return ["stream {", *("    " + line for line in body), "}"]
