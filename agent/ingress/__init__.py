"""The ingress data plane every node's agent runs: a private nginx.

``model`` is the input (sites, routes, listeners, ACME challenges),
``render`` turns it into nginx configuration (pure; ``render_stream`` is the
front that answers tls-alpn-01 challenges while any is pending), ``nginx``
supervises the process (start, check-then-reload, restart, stop),
``access_log`` turns its JSON access log into per-host numbers. ``checks``
is the grammar of everything inserted into the configuration; ``probe``
finds nginx and what it can do; ``paths``, ``files`` and ``process`` are the
prefix's layout, its files and the child process.
"""

from agent.ingress.access_log import AccessLogReader, HostStats
from agent.ingress.model import IngressConfig, Listeners, Route, Site, StreamModule
from agent.ingress.nginx import ApplyResult, NginxError, NginxSupervisor
from agent.ingress.paths import Paths
from agent.ingress.render import render

__all__ = [
    "AccessLogReader",
    "ApplyResult",
    "HostStats",
    "IngressConfig",
    "Listeners",
    "NginxError",
    "NginxSupervisor",
    "Paths",
    "Route",
    "Site",
    "StreamModule",
    "render",
]
