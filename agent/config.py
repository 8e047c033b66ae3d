"""What one node agent needs to know to run: where the servers are, who it
is, what it offers, and how eagerly it talks.

Built by the daemon (``heroctld`` with an embedded agent) or by
``heroctld agent`` (a worker-only node) from the ``[agent]`` table of the
config file, the ``HEROCTL_AGENT_<KEY>`` environment and flags; see
:func:`heroctld.config.load_config`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.ingress.model import Listeners
from domain.scheduler.model import DEFAULT_PORT_RANGE  # what the scheduler assumes too

__all__ = ["AgentConfig", "DRIVER_CHOICES", "parse_port_range", "DEFAULT_PORT_RANGE"]

DRIVER_CHOICES = ("docker", "exec")


def parse_port_range(value: object) -> tuple[int, int]:
    """``"20000-32000"``, ``[20000, 32000]`` or ``(lo, hi)`` -> ``(lo, hi)``."""
    if isinstance(value, str):
        lo_text, sep, hi_text = value.strip().partition("-")
        if not sep:
            raise ValueError(f"port range {value!r} must look like 20000-32000")
        parts: list[object] = [lo_text.strip(), hi_text.strip()]
    elif isinstance(value, list | tuple) and len(value) == 2:
        parts = list(value)
    else:
        raise ValueError(f"port range {value!r} must look like 20000-32000")
    try:
        lo, hi = int(parts[0]), int(parts[1])  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"port range {value!r} must be two port numbers") from None
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"port range {value!r} must satisfy 1 <= low <= high <= 65535")
    return lo, hi


@dataclass
class AgentConfig:
    """``servers``: API addresses (``host:port`` or URLs), tried in turn.
    ``token``: the bearer credential, or a callable returning a fresh one
    (the embedded agent mints short-lived ``hs_`` server credentials).
    ``cpu``/``memory``/``disk``: totals offered to the scheduler (MHz, MB,
    MB); 0 means detect from this machine. ``host_ip``: where task ports are
    published and health checks connect. ``api_port``: a worker-only node's
    agent API (0: none; the embedded agent of a server is reached through
    its server's API), on ``api_bind`` (default: ``host_ip``). ``ca_file``:
    the cluster's CA (PEM) https servers are verified against (None: the
    system's trust store); with ``api_csr`` the agent API is served over TLS
    (agent.http.worker_tls). ``ingress_*``: the node's ingress proxy
    (agent.ingress_sync): its HTTP and HTTPS ports (both 0: this node runs
    no ingress), their address ("" = every address), PROXY protocol and the
    proxies whose header is believed, nginx's worker processes, and the nginx
    binary ("" = look for it)."""

    servers: list[str]
    token: str | Callable[[], str] | None
    node_name: str
    data_dir: str
    host_ip: str = "127.0.0.1"
    address: str = ""  # what the node advertises (default: host_ip)
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    cpu: int = 0
    memory: int = 0
    disk: int = 0
    drivers: tuple[str, ...] = ("docker",)  # what the node offers; exec only when told
    ca_file: str | None = None
    api_csr: str | None = None  # its agent API over TLS: the signing request the cluster signs
    labels: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    # Timing (seconds); tests shorten them.
    watch_wait: float = 30.0
    poll_interval: float = 2.0
    # 0: the first change goes out at once; what changes while a report is in
    # flight leaves together in the next one.
    report_debounce: float = 0.0
    retry_min: float = 0.5
    retry_max: float = 5.0
    default_ttl: float = 10.0
    request_timeout: float = 15.0
    driver_threads: int = 8
    # The Docker engine (agent.drivers.calls.EngineLimits): seconds one call
    # may take, calls in flight on its own threads; while it does not answer
    # it is probed every <= engine_probe_interval s, and its tasks wait up to
    # engine_grace s from the agent's start to be adopted before they are
    # started anyway (and fail with driver_error, under their restart policy).
    engine_timeout: float = 30.0
    engine_threads: int = 8
    engine_probe_interval: float = 5.0
    engine_grace: float = 300.0
    # Logs and metrics (agent.logs, agent.metrics): how long a stopped
    # allocation's logs are kept, their cap per allocation, the sample interval.
    log_retention: float = 24 * 3600.0
    log_max_bytes: int = 10 * 2**20
    metrics_interval: float = 10.0
    api_port: int = 0
    api_bind: str = ""
    ingress_http_port: int = 0
    ingress_https_port: int = 0
    ingress_bind: str = ""
    ingress_proxy_protocol: bool = False
    ingress_trusted_proxies: tuple[str, ...] = ()
    ingress_workers: int | str = "auto"
    ingress_nginx: str = ""
    ingress_stats_interval: float = 5.0  # how often the access log is read (seconds)
    # How long a stopped allocation that took traffic waits at most for every
    # node's ingress to let go of it before its tasks stop (agent.decisions).
    ingress_release_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("the agent needs at least one server address")
        if any(d not in DRIVER_CHOICES for d in self.drivers):
            raise ValueError(f"agent drivers must be among {', '.join(DRIVER_CHOICES)}")
        self.port_range = parse_port_range(self.port_range)
        if not self.address:
            self.address = self.host_ip
        if not 0 <= int(self.api_port) < 65536:
            raise ValueError("the agent's api port must be a TCP port (or 0: none)")
        self.api_port = int(self.api_port)
        if not self.api_bind:
            self.api_bind = self.host_ip
        self.ingress_trusted_proxies = tuple(self.ingress_trusted_proxies)
        self.ingress_listeners()  # a mistake in [ingress] stops the start, with its reason

    def ingress_listeners(self) -> Listeners | None:
        """The ingress's listeners, or None when both ports are 0 (no ingress
        on this node). ValueError for settings nginx could not use."""
        ports = (self.ingress_http_port, self.ingress_https_port)
        if ports == (0, 0):
            return None
        if 0 in ports:
            raise ValueError(
                "the ingress needs both an HTTP and an HTTPS port "
                f"(http_port {ports[0]}, https_port {ports[1]}); set both to 0 for none"
            )
        try:
            return Listeners(
                bind=self.ingress_bind,
                http_port=self.ingress_http_port,
                https_port=self.ingress_https_port,
                proxy_protocol=self.ingress_proxy_protocol,
                trusted_proxies=self.ingress_trusted_proxies,
                worker_processes=self.ingress_workers,
            )
        except ValueError as e:
            raise ValueError(f"ingress: {e}") from None

    @property
    def api_url(self) -> str | None:
        """What the node advertises for its agent API (the bind address, or
        the node's address when it binds every interface)."""
        if not self.api_port:
            return None
        host = self.address if self.api_bind in ("0.0.0.0", "::", "") else self.api_bind
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{'https' if self.api_csr else 'http'}://{host}:{self.api_port}"
