"""A group's `ingress`: the domains the cluster serves for it.

```yaml
ingress:
  - {host: app.example.com, path: /, port: http}             # tls: acme by default
  - {host: app.example.com, path: /api, port: api, tls: off}
```
`port` names a port of one of the group's tasks; the ingress proxies to
that port of every healthy allocation. Paths are prefixes: `/api` serves
`/api` and `/api/...`.
"""

from __future__ import annotations

import re
from typing import Any

from domain.certificates import normalize_host, valid_host
from domain.jobspec.errors import JobSpecError
from domain.jobspec.values import as_list, as_object, join_path, one_of

TLS_MODES = ("acme", "off")
MAX_ROUTES = 100
# A path prefix: printable, no spaces, quotes, braces or semicolons (it is
# rendered into the proxy's configuration), no `..` segment.
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,=:@%/-]*$")


def ingress_host(value: Any, path: str) -> str:
    if not isinstance(value, str) or not valid_host(value, allow_wildcard=False):
        raise JobSpecError(path, f"must be a DNS host name like app.example.com (got {value!r})")
    return normalize_host(value)


def ingress_path(value: Any, path: str) -> str:
    if value is None:
        return "/"
    if (
        not isinstance(value, str)
        or not _PATH.fullmatch(value)
        or len(value) > 1024
        or "/../" in value + "/"
        or "'" in value
    ):
        raise JobSpecError(path, f"must be a path starting with / (got {value!r})")
    return value.rstrip("/") or "/"


def ingress_list(value: Any, path: str, port_names: set[str]) -> list[dict[str, Any]]:
    """The normalized ingress entries of a group whose tasks have `port_names`."""
    if value is None:
        return []
    entries = as_list(value, path)
    if len(entries) > MAX_ROUTES:
        raise JobSpecError(path, f"at most {MAX_ROUTES} entries")
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(entries):
        where = join_path(path, i)
        doc = as_object(raw, where, {"host", "path", "port", "tls"})
        host = ingress_host(doc.get("host"), join_path(where, "host"))
        prefix = ingress_path(doc.get("path"), join_path(where, "path"))
        port = doc.get("port")
        if not isinstance(port, str) or port not in port_names:
            have = ", ".join(sorted(port_names)) or "none"
            raise JobSpecError(
                join_path(where, "port"), f"names no port of this group ({port!r}; ports: {have})"
            )
        tls = doc.get("tls", "acme")
        tls = "off" if tls is False else tls  # YAML 1.1 reads a bare `off` as false
        tls = one_of(tls, TLS_MODES, join_path(where, "tls"))
        if (host, prefix) in seen:
            raise JobSpecError(where, f"{host}{prefix} is declared twice")
        seen.add((host, prefix))
        out.append({"host": host, "path": prefix, "port": port, "tls": tls})
    return out
