"""Server configuration: TOML file < environment < flags.

The keys of the TOML file are the flags' names with `_` for `-`
(`node_name`, `data_dir`, `api_port`, ...) plus a table per part of the
server (`[raft]`, `[rate_limit]`, `[auth]`, `[webhooks]`, `[logs]`,
`[metrics]`, `[gc]`, `[backup]`, `[tls]`; `[agent]` in heroctld.config_agent;
`[ingress]`, `[acme]`, `[api]` in heroctld.config_ingress), each of whose
keys `HEROCTL_<TABLE>_<KEY>` overrides. Secrets (the cluster key) may come
from the environment so they stay out of files and process listings. An
unknown key or a value of the wrong type stops the server at start
(heroctld.config_tables reads the tables); the settings of a component live
with it (GCSettings in heroctld.controllers.gc).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import tomllib
from dataclasses import dataclass, field
from typing import Any

from heroctld.advertise import WILDCARDS, AdvertiseError, advertise_for_wildcard
from heroctld.config_agent import AGENT, AgentSettings, resolve_drivers
from heroctld.config_ingress import (
    ACME,
    API,
    INGRESS,
    AcmeSettings,
    ApiSettings,
    IngressSettings,
)
from heroctld.config_tables import (
    DEFAULT_SOURCE,
    ConfigError,
    Table,
    boolean,
    duration,
    integer,
    number,
    one_of,
    read_value,
    size,
    text,
    unknown_key,
)
from heroctld.controllers.backup import BackupSettings
from heroctld.controllers.gc import GCSettings
from heroctld.tls import TLS_MODES, TlsSettings
from raft.config import DEFAULT_MAX_FRAME, MIN_FRAME
from raft.keys import ClusterKeyError, check_cluster_key, generate_cluster_key

log = logging.getLogger("heroctl")

ENV_CLUSTER_KEY = "HEROCTL_CLUSTER_KEY"
ENV_BOOTSTRAP_TOKEN = "HEROCTL_BOOTSTRAP_TOKEN"  # the first leader bootstraps ACLs with it
ENV_ADMIN_PASSWORD = "HEROCTL_ADMIN_PASSWORD"  # optional, with the bootstrap token
ENV_NODE_TTL = "HEROCTL_NODE_TTL"  # overrides node_ttl (tests shorten it)


@dataclass
class RaftTimeouts:
    election_timeout_min: float = 0.4
    election_timeout_max: float = 1.4
    leader_fallback_timeout: float = 2.0
    no_leader_timeout: float = 5.0  # a write or consistent read waits this long, then 503
    compaction_min_entries: float = 5000  # raft log entries before a snapshot is taken
    compaction_min_time: float = 300.0  # or seconds since the last one
    flush_journal: bool = True  # false turns off the journal flush (benchmarks of its cost only)
    max_frame: int = DEFAULT_MAX_FRAME  # the largest message a raft peer may send (bytes)


@dataclass
class RateLimits:
    """Requests per minute per identity ([rate_limit] or HEROCTL_RATE_LIMIT_*); 0 = unlimited."""

    default: int = 1000
    management: int = 10_000
    service: int = 10_000


@dataclass
class AuthSettings:
    """[auth] jwt_ttl / refresh_ttl, seconds (or HEROCTL_AUTH_JWT_TTL, ..._REFRESH_TTL);
    ``max_sessions``: login sessions kept per identity (a new login ends the oldest);
    ``refresh_grace``: how long a refresh token just replaced still gets the pair
    that replaced it (parallel clients of one login), instead of ending the session."""

    jwt_ttl: int = 86_400
    refresh_ttl: int = 30 * 86_400
    max_sessions: int = 20
    refresh_grace: float = 10.0


@dataclass
class WebhookSettings:
    """[webhooks] or HEROCTL_WEBHOOKS_<KEY>: ``allow_private``: let webhook URLs reach
    loopback, link-local and private addresses, refused by default so that a
    webhook is no way into the cluster's own network (domain.webhook_targets)."""

    allow_private: bool = False


@dataclass
class LogSettings:
    """[logs] or HEROCTL_LOGS_<KEY>: ``retention``: how long the logs of a
    stopped or replaced allocation stay readable ("24h", seconds);
    ``max_bytes_per_alloc``: the cap per allocation, oldest lines dropped ("10MiB")."""

    retention: float = 24 * 3600.0
    max_bytes_per_alloc: int = 10 * 2**20


@dataclass
class MetricsSettings:
    """[metrics] or HEROCTL_METRICS_<KEY>: ``interval``: seconds between samples."""

    interval: float = 10.0


_seconds = duration()


def _whole_seconds(value: Any) -> int:
    return int(round(_seconds(value)))


RAFT = Table(
    "raft",
    RaftTimeouts,
    {
        "election_timeout_min": _seconds,
        "election_timeout_max": _seconds,
        "leader_fallback_timeout": _seconds,
        "no_leader_timeout": _seconds,
        "compaction_min_entries": number(),
        "compaction_min_time": _seconds,
        "flush_journal": boolean,
        "max_frame": size,
    },
)
RATE_LIMIT = Table(
    "rate_limit", RateLimits, dict.fromkeys(("default", "management", "service"), integer())
)
AUTH = Table(
    "auth",
    AuthSettings,
    {
        "jwt_ttl": _whole_seconds,
        "refresh_ttl": _whole_seconds,
        "max_sessions": integer(minimum=1),
        "refresh_grace": _seconds,
    },
)
WEBHOOKS = Table("webhooks", WebhookSettings, {"allow_private": boolean})
LOGS = Table("logs", LogSettings, {"retention": _seconds, "max_bytes_per_alloc": size})
METRICS = Table("metrics", MetricsSettings, {"interval": duration(minimum=0.05)})
GC = Table(
    "gc",
    GCSettings,
    {
        "alloc_threshold": _seconds,
        "keep_per_group": integer(),
        "interval": duration(minimum=0.1),
        "batch_size": integer(minimum=1),
    },
)
BACKUP = Table(
    "backup",
    BackupSettings,
    {"interval": _seconds, "dir": text, "keep": integer(minimum=1)},
)
TLS = Table(
    "tls",
    TlsSettings,
    {
        "mode": one_of(*TLS_MODES),
        "cert_file": text,
        "key_file": text,
        "ca_file": text,
        "cert_lifetime": duration(minimum=2.0),
    },
)
TABLES = {
    t.name: t
    for t in (
        RAFT,
        RATE_LIMIT,
        AUTH,
        WEBHOOKS,
        AGENT,
        LOGS,
        METRICS,
        GC,
        BACKUP,
        TLS,
        INGRESS,
        ACME,
        API,
    )
}


def load_logs_metrics(
    data: dict[str, Any], env: dict[str, str], source: str = DEFAULT_SOURCE
) -> tuple[LogSettings, MetricsSettings]:
    """The [logs] and [metrics] tables of a config file, then the environment."""
    return (
        LOGS.read(data.get("logs") or {}, env, source),
        METRICS.read(data.get("metrics") or {}, env, source),
    )


def load_gc(data: Any, env: dict[str, str], source: str = DEFAULT_SOURCE) -> GCSettings:
    return GC.read(data, env, source)


@dataclass
class ServerConfig:
    node_name: str = ""
    data_dir: str = ""
    bind: str = "127.0.0.1"
    advertise: str = ""
    api_port: int = 7070
    raft_port: int = 7071
    raft_bind: str = ""  # the raft port's address (default: bind)
    peers: list[str] = field(default_factory=list)
    join: str = ""
    cluster_key: str = ""
    no_agent: bool = False
    dev: bool = False
    log_level: str = "info"
    node_ttl: float = 10.0  # a node without heartbeat for this long is down
    raft: RaftTimeouts = field(default_factory=RaftTimeouts)
    rate_limit: RateLimits = field(default_factory=RateLimits)
    auth: AuthSettings = field(default_factory=AuthSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    gc: GCSettings = field(default_factory=GCSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    ingress: IngressSettings = field(default_factory=IngressSettings)
    acme: AcmeSettings = field(default_factory=AcmeSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    bootstrap_token: str = ""  # env only: HEROCTL_BOOTSTRAP_TOKEN
    admin_password: str = ""  # env only: HEROCTL_ADMIN_PASSWORD

    @property
    def advertise_host(self) -> str:
        if self.advertise:
            return self.advertise
        return "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind

    @property
    def raft_address(self) -> str:
        """What other servers dial: the raft bind address when it is a specific one."""
        host = self.raft_bind if self.raft_bind not in ("", "0.0.0.0", "::") else None
        return f"{host or self.advertise_host}:{self.raft_port}"

    @property
    def raft_listen(self) -> str:
        return f"{self.raft_bind or self.bind}:{self.raft_port}"

    @property
    def scheme(self) -> str:
        return "http" if self.tls.mode == "off" else "https"

    @property
    def api_address(self) -> str:
        return f"{self.scheme}://{self.advertise_host}:{self.api_port}"


def _split_peers(value: Any) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return [p.strip() for p in value if p.strip()]
    raise ValueError("expected HOST:PORT,HOST:PORT,... or a list of strings")


# The top-level keys of the file (the flags' names); the env-only secrets are not among them.
TOP_LEVEL = {
    "node_name": text,
    "data_dir": text,
    "bind": text,
    "advertise": text,
    "api_port": integer(),
    "raft_port": integer(),
    "raft_bind": text,
    "peers": _split_peers,
    "join": text,
    "cluster_key": text,
    "no_agent": boolean,
    "dev": boolean,
    "log_level": text,
    "node_ttl": _seconds,
}


def read_config(path: str | None, env: dict[str, str]) -> ServerConfig:
    """The config file (none: the defaults) and the environment, every key checked."""
    data: dict[str, Any] = {}
    source = path or DEFAULT_SOURCE
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
    cfg = ServerConfig()
    tables: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name in TABLES:
            tables[name] = value
        elif name in TOP_LEVEL:
            setattr(cfg, name, read_value(TOP_LEVEL[name], value, name))
        else:
            everything = [*TOP_LEVEL, *TABLES, *(p for t in TABLES.values() for p in t.paths())]
            raise unknown_key(key, everything, source)
    for name, table in TABLES.items():
        setattr(cfg, name, table.read(tables.get(name, {}), env, source))
    resolve_drivers(cfg.agent, source)
    cfg.bootstrap_token = env.get(ENV_BOOTSTRAP_TOKEN, "").strip()
    cfg.admin_password = env.get(ENV_ADMIN_PASSWORD, "")
    if not cfg.cluster_key and env.get(ENV_CLUSTER_KEY):
        cfg.cluster_key = env[ENV_CLUSTER_KEY]
    if env.get(ENV_NODE_TTL):
        cfg.node_ttl = read_value(_seconds, env[ENV_NODE_TTL], ENV_NODE_TTL)
    return cfg


def load_config(
    path: str | None, overrides: dict[str, Any], env: dict[str, str] | None = None
) -> ServerConfig:
    """The server's configuration: the file, the environment, then the flags (``overrides``)."""
    cfg = read_config(path, dict(os.environ) if env is None else env)
    for key, value in overrides.items():
        if value is not None and value != () and value is not False:
            setattr(cfg, key, value)
    cfg.peers = read_value(_split_peers, cfg.peers, "peers")
    return finish(cfg)


def _wildcard_advertise(cfg: ServerConfig) -> str:
    """The address a server bound to every address advertises (heroctld.advertise);
    ConfigError when it cannot be worked out. Not with a raft address of its own
    (``raft_bind``): that one says nothing of where the API is reached."""
    if cfg.raft_bind not in WILDCARDS:
        raise ConfigError(
            f"--bind {cfg.bind or '0.0.0.0'} with --raft-bind {cfg.raft_bind}: give --advertise "
            "ADDR, the address the other servers and agents reach this server's API at"
        )
    try:
        return advertise_for_wildcard(cfg.bind, int(cfg.raft_port), cfg.peers, cfg.join)
    except AdvertiseError as e:
        raise ConfigError(str(e)) from None


def finish(cfg: ServerConfig) -> ServerConfig:
    if cfg.dev:
        cfg.node_name = cfg.node_name or "dev"
        cfg.data_dir = cfg.data_dir or tempfile.mkdtemp(prefix="heroctl-dev-")
        cfg.cluster_key = cfg.cluster_key or generate_cluster_key()
        cfg.agent.host_ip = cfg.agent.host_ip or "127.0.0.1"
        cfg.tls.mode = "off"  # plain HTTP on 127.0.0.1, and it says so
        # The ingress on 127.0.0.1, on ports a user may bind (80 and 443 need root).
        cfg.ingress.bind = cfg.ingress.bind or "127.0.0.1"
        if (cfg.ingress.http_port, cfg.ingress.https_port) == (80, 443):
            cfg.ingress.http_port, cfg.ingress.https_port = 8080, 8443
    elif cfg.bind in WILDCARDS and not cfg.advertise and not (cfg.join and cfg.peers):
        cfg.advertise = _wildcard_advertise(cfg)
    cfg.agent.host_ip = cfg.agent.host_ip or cfg.advertise_host
    if not cfg.node_name:
        cfg.node_name = socket.gethostname().split(".")[0]
    if not cfg.data_dir:
        raise ConfigError("--data-dir is required (or --dev)")
    if not cfg.cluster_key:
        raise ConfigError(
            f"a cluster key is required: --cluster-key or {ENV_CLUSTER_KEY} (see `heroctld keygen`)"
        )
    try:
        cfg.cluster_key = check_cluster_key(cfg.cluster_key)
    except ClusterKeyError as e:
        raise ConfigError(str(e)) from None
    for name in ("api_port", "raft_port"):
        port = int(getattr(cfg, name))
        if not 0 < port < 65536:
            raise ConfigError(f"{name} must be a TCP port")
        setattr(cfg, name, port)
    if cfg.join and cfg.peers:
        raise ConfigError("use --peers to form a new cluster or --join to enter one, not both")
    if not cfg.join and cfg.raft_address not in cfg.peers:
        cfg.peers = [cfg.raft_address, *cfg.peers]
    if cfg.tls.mode == "files" and not (cfg.tls.cert_file and cfg.tls.key_file):
        raise ConfigError('[tls] mode = "files" needs cert_file and key_file (and ca_file)')
    t = cfg.raft
    if not 0.2 <= t.election_timeout_min < t.election_timeout_max:
        raise ConfigError("raft.election_timeout_min must be >= 0.2 and below election_timeout_max")
    if t.max_frame < MIN_FRAME:
        raise ConfigError(
            f"raft.max_frame must be at least {MIN_FRAME} bytes (what a server sends)"
        )
    return cfg
