"""Server configuration: TOML file < environment < flags.

The keys of the TOML file are the flags' names with `_` for `-`
(`node_name`, `data_dir`, `api_port`, ...) plus the `[raft]` table for
timeouts. Secrets (the cluster key) may come from the environment so they
stay out of files and process listings.
"""

from __future__ import annotations

import os
import socket
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from heroctld.controllers.gc import GCSettings
from raft.keys import ClusterKeyError, check_cluster_key, generate_cluster_key

ENV_CLUSTER_KEY = "HEROCTL_CLUSTER_KEY"
ENV_BOOTSTRAP_TOKEN = "HEROCTL_BOOTSTRAP_TOKEN"  # the first leader bootstraps ACLs with it
ENV_ADMIN_PASSWORD = "HEROCTL_ADMIN_PASSWORD"  # optional, with the bootstrap token


class ConfigError(ValueError):
    pass


@dataclass
class RaftTimeouts:
    election_timeout_min: float = 0.4
    election_timeout_max: float = 1.4
    leader_fallback_timeout: float = 2.0
    no_leader_timeout: float = 5.0  # a write or consistent read waits this long, then 503
    compaction_min_entries: float = 5000  # raft log entries before a snapshot is taken
    compaction_min_time: float = 300.0  # or seconds since the last one
    flush_journal: float = 1  # 0 turns off the journal flush (benchmarks of its cost only)


@dataclass
class RateLimits:
    """Requests per minute per identity ([rate_limit] or HEROCTL_RATE_LIMIT_*); 0 = unlimited."""

    default: int = 1000
    management: int = 10_000
    service: int = 10_000


@dataclass
class AuthSettings:
    """[auth] jwt_ttl / refresh_ttl in seconds (or HEROCTL_AUTH_JWT_TTL, ..._REFRESH_TTL)."""

    jwt_ttl: int = 86_400
    refresh_ttl: int = 30 * 86_400


def _section_items(
    target: Any, section: str, data: dict[str, Any], env: dict[str, str]
) -> Iterator[tuple[str, Any]]:
    """The keys and values of a TOML table, HEROCTL_<SECTION>_<KEY> over them; each key
    must be a field of the dataclass ``target`` (checked as it comes)."""
    values = dict(data)
    for key in vars(target):
        env_value = env.get(f"HEROCTL_{section.upper()}_{key.upper()}")
        if env_value:
            values[key] = env_value
    for key, value in values.items():
        if not hasattr(target, key):
            raise ConfigError(f"unknown key {section}.{key}")
        yield key, value


def _table_items(
    target: Any, section: str, table: Any, env: dict[str, str]
) -> Iterator[tuple[str, Any]]:
    """`_section_items` of a [section] that must be a table and may spell
    its keys with dashes."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table")
    values = {k.replace("-", "_"): v for k, v in table.items()}
    return _section_items(target, section, values, env)


def _whole_number(value: Any, what: str) -> int:
    """A non-negative int, or ConfigError naming ``what``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a whole number") from None
    if number < 0:
        raise ConfigError(f"{what} must be >= 0")
    return number


def _int_section(target: Any, section: str, data: dict[str, Any], env: dict[str, str]) -> None:
    """Fill a dataclass of non-negative ints from a TOML table, then HEROCTL_<SECTION>_<KEY>."""
    for key, value in _section_items(target, section, data, env):
        setattr(target, key, _whole_number(value, f"{section}.{key}"))


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
}


def _number_with_unit(value: Any, units: dict[str, int], what: str) -> float:
    """``90``, ``"90"``, ``"24h"``, ``"10MiB"`` -> a number in the base unit."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits) :]
        if unit not in units or not digits:
            raise ConfigError(
                f"{what} must be a number with an optional unit ({', '.join(u for u in units if u)})"
            )
        try:
            number = float(digits) * units[unit]
        except ValueError:
            raise ConfigError(f"{what} must be a number") from None
    if number < 0:
        raise ConfigError(f"{what} must be >= 0")
    return number


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


def load_logs_metrics(
    data: dict[str, Any], env: dict[str, str]
) -> tuple[LogSettings, MetricsSettings]:
    """The [logs] and [metrics] tables of a config file, then the environment."""
    logs, metrics = LogSettings(), MetricsSettings()
    for section, target in (("logs", logs), ("metrics", metrics)):
        for key, value in _table_items(target, section, data.get(section) or {}, env):
            if key == "max_bytes_per_alloc":
                setattr(target, key, int(_number_with_unit(value, _SIZE_UNITS, f"{section}.{key}")))
            else:
                setattr(target, key, _number_with_unit(value, _DURATION_UNITS, f"{section}.{key}"))
    if metrics.interval < 0.05:
        raise ConfigError("metrics.interval must be at least 0.05 seconds")
    return logs, metrics


def load_gc(data: Any, env: dict[str, str]) -> GCSettings:
    gc = GCSettings()
    for key, value in _table_items(gc, "gc", data, env):
        if key in ("keep_per_group", "batch_size"):
            setattr(gc, key, _whole_number(value, f"gc.{key}"))
        else:
            setattr(gc, key, _number_with_unit(value, _DURATION_UNITS, f"gc.{key}"))
    if gc.interval < 0.1 or gc.batch_size < 1:
        raise ConfigError("gc.interval must be at least 0.1 seconds and gc.batch_size at least 1")
    return gc


AGENT_DRIVERS = ("auto", "docker", "exec")


@dataclass
class AgentSettings:
    """[agent] table, or HEROCTL_AGENT_<KEY>: what this node's agent offers.

    ``port_range``: host ports the scheduler may pick for this node's tasks
    ("20000-32000"); ``cpu`` (MHz), ``memory`` and ``disk`` (MB): totals
    offered (0: detected from /proc); ``host_ip``: where task ports are
    published (default: the advertised address; 127.0.0.1 with --dev);
    ``driver``: docker, exec, or auto (docker when an engine answers, with
    exec beside it). A worker-only node (``heroctld agent``) only:
    ``api_port``, the port of its agent API, through which the servers read
    its logs and metrics (0: none), on ``api_bind`` (default: ``host_ip``)."""

    port_range: str = "20000-32000"
    cpu: int = 0
    memory: int = 0
    disk: int = 0
    host_ip: str = ""
    driver: str = "auto"
    api_port: int = 7072
    api_bind: str = ""


def load_agent_settings(data: Any, env: dict[str, str]) -> AgentSettings:
    from agent.config import parse_port_range

    agent = AgentSettings()
    for key, value in _table_items(agent, "agent", data, env):
        if key in ("cpu", "memory", "disk"):
            setattr(agent, key, _whole_number(value, f"agent.{key}"))
        elif key == "api_port":
            agent.api_port = _whole_number(value, "agent.api_port")
            if agent.api_port > 65535:
                raise ConfigError("agent.api_port must be a TCP port (or 0: no agent API)")
        elif key == "port_range":
            try:
                lo, hi = parse_port_range(value)
            except ValueError as e:
                raise ConfigError(f"agent.port_range: {e}") from None
            agent.port_range = f"{lo}-{hi}"
        elif key == "driver":
            if value not in AGENT_DRIVERS:
                raise ConfigError(f"agent.driver must be one of {', '.join(AGENT_DRIVERS)}")
            agent.driver = value
        else:
            setattr(agent, key, str(value).strip())  # host_ip, api_bind
    return agent


@dataclass
class ServerConfig:
    node_name: str = ""
    data_dir: str = ""
    bind: str = "127.0.0.1"
    advertise: str = ""
    api_port: int = 7070
    raft_port: int = 7071
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
    agent: AgentSettings = field(default_factory=AgentSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    gc: GCSettings = field(default_factory=GCSettings)
    bootstrap_token: str = ""  # env only: HEROCTL_BOOTSTRAP_TOKEN
    admin_password: str = ""  # env only: HEROCTL_ADMIN_PASSWORD

    @property
    def advertise_host(self) -> str:
        if self.advertise:
            return self.advertise
        return "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind

    @property
    def raft_address(self) -> str:
        return f"{self.advertise_host}:{self.raft_port}"

    @property
    def api_address(self) -> str:
        return f"http://{self.advertise_host}:{self.api_port}"


def _split_peers(value: Any) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return [p.strip() for p in value if p.strip()]
    raise ConfigError("peers must be HOST:PORT,HOST:PORT,... or a list of strings")


def load_config(
    path: str | None, overrides: dict[str, Any], env: dict[str, str] | None = None
) -> ServerConfig:
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
    cfg = ServerConfig()
    raft_data = data.pop("raft", {}) or {}
    rate_data = data.pop("rate_limit", {}) or {}
    auth_data = data.pop("auth", {}) or {}
    agent_data = data.pop("agent", {}) or {}
    cfg.logs, cfg.metrics = load_logs_metrics(
        {"logs": data.pop("logs", {}), "metrics": data.pop("metrics", {})}, env
    )
    if not isinstance(rate_data, dict) or not isinstance(auth_data, dict):
        raise ConfigError("[rate_limit] and [auth] must be tables")
    known = {f.name for f in fields(ServerConfig)} - {
        "raft",
        "rate_limit",
        "auth",
        "agent",
        "logs",
        "metrics",
        "gc",
        "bootstrap_token",
        "admin_password",
    }
    for key, value in data.items():
        key = key.replace("-", "_")
        if key not in known:
            continue  # other sections (rate_limit, ...) belong to other parts
        setattr(cfg, key, value)
    for key, value in raft_data.items():
        if hasattr(cfg.raft, key):
            setattr(cfg.raft, key, float(value))
    for key in vars(cfg.raft):  # HEROCTL_RAFT_<KEY> overrides [raft] <key>
        value = env.get(f"HEROCTL_RAFT_{key.upper()}")
        if value:
            try:
                setattr(cfg.raft, key, float(value))
            except ValueError:
                raise ConfigError(f"HEROCTL_RAFT_{key.upper()} must be a number") from None
    _int_section(cfg.rate_limit, "rate_limit", rate_data, env)
    _int_section(cfg.auth, "auth", auth_data, env)
    cfg.agent = load_agent_settings(agent_data, env)
    cfg.gc = load_gc(data.pop("gc", {}) or {}, env)
    cfg.bootstrap_token = env.get(ENV_BOOTSTRAP_TOKEN, "").strip()
    cfg.admin_password = env.get(ENV_ADMIN_PASSWORD, "")
    if not cfg.cluster_key and env.get(ENV_CLUSTER_KEY):
        cfg.cluster_key = env[ENV_CLUSTER_KEY]
    for key, value in overrides.items():
        if value is not None and value != () and value is not False:
            setattr(cfg, key, value)
    cfg.peers = _split_peers(cfg.peers)
    return finish(cfg)


def finish(cfg: ServerConfig) -> ServerConfig:
    if cfg.dev:
        cfg.node_name = cfg.node_name or "dev"
        cfg.data_dir = cfg.data_dir or tempfile.mkdtemp(prefix="heroctl-dev-")
        cfg.cluster_key = cfg.cluster_key or generate_cluster_key()
        cfg.agent.host_ip = cfg.agent.host_ip or "127.0.0.1"
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
    t = cfg.raft
    if not 0.2 <= t.election_timeout_min < t.election_timeout_max:
        raise ConfigError("raft.election_timeout_min must be >= 0.2 and below election_timeout_max")
    return cfg
