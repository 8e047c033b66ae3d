"""Which nginx this node has, and what it can do: found once, when the
supervisor is made.

``nginx -V`` names the version and the modules nginx was built with. The
http side needs ssl, HTTP/2 and realip (nginx >= 1.18). The tls-alpn-01
hop (``agent.ingress.render_stream``) also needs the stream module with its
ssl, ssl_preread and realip parts and ``ssl_alpn`` (nginx >= 1.21.4):
Debian builds the stream module as a dynamic module shipped apart
(``libnginx-mod-stream``), so its file must exist too. Without it the node
serves everything but tls-alpn-01 challenges, and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.ingress.model import StreamModule

__all__ = ["Probe", "probe", "stream_support"]

_SEARCH = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
_MODULES = ("http_ssl_module", "http_v2_module", "http_realip_module")
_STREAM_MODULES = ("stream_ssl_module", "stream_ssl_preread_module", "stream_realip_module")
_MIN_VERSION = (1, 18)
_ALPN_MIN_VERSION = (1, 21, 4)  # ssl_alpn in stream servers
_STREAM_FILE = "ngx_stream_module.so"


@dataclass(frozen=True)
class Probe:
    """``nginx``: the binary (None: unusable) and ``reason``, fit for the
    node's ``ingress`` field (where it is and its version, or what is
    missing); ``stream``: how to get the stream module (None: tls-alpn-01
    cannot be answered, ``stream_reason`` says why)."""

    nginx: str | None
    reason: str
    stream: StreamModule | None = None
    stream_reason: str | None = None


def probe(nginx: str | None = None) -> Probe:
    """Find nginx (``nginx`` or PATH and the usual places) and what it can do."""
    path = (
        nginx or shutil.which("nginx") or next((p for p in _SEARCH if os.access(p, os.X_OK)), None)
    )
    if path is None:
        return Probe(None, "nginx is not installed (looked in PATH and /usr/sbin, /usr/local/sbin)")
    try:
        out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Probe(None, f"nginx at {path} does not run: {e}")
    text = out.stderr + out.stdout
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    if out.returncode != 0 or found is None:
        return Probe(None, f"{path} is not a working nginx (nginx -V exited {out.returncode})")
    version = ".".join(found.groups())
    numbers = tuple(int(n) for n in found.groups())
    if numbers[:2] < _MIN_VERSION:
        return Probe(None, f"nginx {version} at {path} is older than 1.18")
    missing = [m for m in _MODULES if f"--with-{m}" not in text]
    if missing:
        return Probe(None, f"nginx {version} at {path} lacks {', '.join(missing)}")
    stream, why = stream_support(text, numbers)
    return Probe(path, f"nginx {version} at {path}", stream, why)


def stream_support(text: str, version: tuple[int, ...]) -> tuple[StreamModule | None, str | None]:
    """From ``nginx -V``'s text and version: the stream module and how to load
    it, or why the hop is unavailable."""
    unavailable = "tls-alpn-01 challenges are not served: "
    if version < _ALPN_MIN_VERSION:
        return None, unavailable + "nginx is older than 1.21.4 (ssl_alpn in stream)"
    flags = set(text.split())
    missing = [m for m in _STREAM_MODULES if f"--with-{m}" not in flags]
    if "--with-stream" in flags:
        module = StreamModule(None)
    elif "--with-stream=dynamic" in flags:
        modules = re.search(r"--modules-path=(\S+)", text)
        prefix = re.search(r"--prefix=(\S+)", text)
        directory = Path(modules[1]) if modules else Path(prefix[1] if prefix else "/") / "modules"
        file = directory / _STREAM_FILE
        if not file.is_file():
            return None, unavailable + f"nginx's stream module ({file}) is not installed"
        module = StreamModule(str(file))
    else:
        return None, unavailable + "nginx is built without the stream module"
    if missing:
        return None, unavailable + f"nginx lacks {', '.join(missing)}"
    return module, None
