"""The server's configuration (heroctld.config): every table of the file, its
environment overrides, and the mistakes that stop the server at start (an
unknown key, with the closest valid one; a value of the wrong type, with
where it came from)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from heroctld.config import (
    TABLES,
    ConfigError,
    load_config,
    load_gc,
    load_logs_metrics,
    read_config,
)
from heroctld.config_agent import load_agent_settings
from raft.keys import generate_cluster_key

ROOT = Path(__file__).resolve().parents[2]
KEY = generate_cluster_key()


def from_file(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "heroctl.toml"
    path.write_text(text)
    return load_config(str(path), {}, env={"HEROCTL_CLUSTER_KEY": KEY, **(env or {})})


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        from_file(tmp_path, text, env)
    return str(info.value).replace(str(tmp_path / "heroctl.toml"), "heroctl.toml")


def test_the_example_config_loads() -> None:
    cfg = load_config(
        str(ROOT / "deploy" / "heroctld.toml.example"), {}, env={"HEROCTL_CLUSTER_KEY": KEY}
    )
    assert (cfg.node_name, cfg.bind, cfg.api_port) == ("server-1", "10.0.0.11", 7070)
    assert cfg.peers == ["10.0.0.11:7071", "10.0.0.12:7071", "10.0.0.13:7071"]
    assert (cfg.raft.election_timeout_min, cfg.raft.compaction_min_entries) == (0.4, 5000)
    assert (cfg.rate_limit.default, cfg.gc.alloc_threshold, cfg.gc.keep_per_group) == (
        1000,
        3600,
        3,
    )


def test_every_table_from_the_file(tmp_path: Path) -> None:
    cfg = from_file(
        tmp_path,
        """
        node-name = "s1"
        data_dir = "/tmp/x"
        api_port = 7170
        peers = "127.0.0.1:7071, 10.0.0.2:7071"
        no_agent = true
        node_ttl = "30s"

        [raft]
        election_timeout_min = "500ms"
        election_timeout_max = 2
        compaction_min_entries = 100
        flush_journal = false

        [rate-limit]
        default = 5

        [auth]
        jwt_ttl = "1h"
        refresh_ttl = 600

        [agent]
        port_range = [21000, 22000]
        drivers = ["docker", "exec"]
        memory = 2048

        [logs]
        retention = "1h30m"
        max_bytes_per_alloc = "1MiB"

        [metrics]
        interval = "2s"

        [gc]
        alloc_threshold = "2d"
        batch_size = 10
        """.replace("\n        ", "\n"),
    )
    assert (cfg.node_name, cfg.data_dir, cfg.api_port, cfg.no_agent, cfg.node_ttl) == (
        "s1",
        "/tmp/x",
        7170,
        True,
        30,
    )
    assert cfg.peers == ["127.0.0.1:7071", "10.0.0.2:7071"]
    assert (cfg.raft.election_timeout_min, cfg.raft.election_timeout_max) == (0.5, 2)
    assert (cfg.raft.compaction_min_entries, cfg.raft.flush_journal) == (100, False)
    assert (cfg.rate_limit.default, cfg.rate_limit.service) == (5, 10_000)
    assert (cfg.auth.jwt_ttl, cfg.auth.refresh_ttl) == (3600, 600)
    assert (cfg.agent.port_range, cfg.agent.drivers, cfg.agent.memory) == (
        "21000-22000",
        ["docker", "exec"],
        2048,
    )
    assert (cfg.logs.retention, cfg.logs.max_bytes_per_alloc) == (5400, 2**20)
    assert (cfg.metrics.interval, cfg.gc.alloc_threshold, cfg.gc.batch_size) == (2, 172_800, 10)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "HEROCTL_RAFT_NO_LEADER_TIMEOUT": "12",
        "HEROCTL_RAFT_COMPACTION_MIN_TIME": "1m",
        "HEROCTL_RATE_LIMIT_DEFAULT": "0",
        "HEROCTL_AUTH_JWT_TTL": "2",
        "HEROCTL_GC_KEEP_PER_GROUP": "",  # empty: not set
    }
    cfg = from_file(tmp_path, 'data_dir = "/tmp/x"\n[raft]\nno_leader_timeout = 3\n', env)
    assert (cfg.raft.no_leader_timeout, cfg.raft.compaction_min_time) == (12, 60)
    assert (cfg.rate_limit.default, cfg.auth.jwt_ttl, cfg.gc.keep_per_group) == (0, 2, 3)
    assert cfg.cluster_key == KEY


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "heroctl.toml"
    path.write_text('data_dir = "/tmp/x"\napi_port = 7170\n')
    cfg = load_config(str(path), {"api_port": 7270, "dev": False}, env={"HEROCTL_CLUSTER_KEY": KEY})
    assert cfg.api_port == 7270


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('bnd = "0.0.0.0"', 'unknown key "bnd" in heroctl.toml: did you mean "bind"?'),
        (
            "[raft]\nelection_timeout = 1",
            'unknown key "raft.election_timeout" in heroctl.toml: '
            'did you mean "raft.election_timeout_min"?',
        ),
        (
            "[rate_limits]\ndefault = 1",
            'unknown key "rate_limits" in heroctl.toml: did you mean "rate_limit"?',
        ),
        (
            'retention = "1h"',
            'unknown key "retention" in heroctl.toml: did you mean "logs.retention"?',
        ),  # a key of a table, at the top level
        ("[auth]\nttl = 5", 'unknown key "auth.ttl" in heroctl.toml: did you mean "auth.jwt_ttl"?'),
        (
            "[agent]\ndrivrs = ['exec']",
            'unknown key "agent.drivrs" in heroctl.toml: did you mean "agent.drivers"?',
        ),
        (
            "[logs]\ncolour = 1",
            'unknown key "logs.colour" in heroctl.toml '
            "(valid keys: logs.max_bytes_per_alloc, logs.retention)",
        ),
        (
            "[metrics]\nintervall = 1",
            'unknown key "metrics.intervall" in heroctl.toml: did you mean "metrics.interval"?',
        ),
        (
            "[gc]\nkeep = 1",
            'unknown key "gc.keep" in heroctl.toml: did you mean "gc.keep_per_group"?',
        ),
        ('bootstrap_token = "ht_x"', 'unknown key "bootstrap_token" in heroctl.toml'),
    ],
)
def test_unknown_keys_stop_the_server(tmp_path: Path, text: str, message: str) -> None:
    assert error_of(tmp_path, 'data_dir = "/tmp/x"\n' + text).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('api_port = "x"', 'api_port: expected an integer, got "x"'),
        ("api_port = 7070.5", "api_port: expected an integer, got 7070.5"),
        ("dev = 'yes'", 'dev: expected true or false, got "yes"'),
        ("bind = 10", "bind: expected a string, got 10"),
        ("peers = 7071", "peers: expected HOST:PORT,HOST:PORT,... or a list of strings"),
        (
            "node_ttl = 'soon'",
            "node_ttl: expected a duration (seconds, or like 500ms, 30s, 5m, "
            '1h30m or 2d), got "soon"',
        ),
        ("[raft]\nelection_timeout_min = true", "[raft] election_timeout_min: expected a duration"),
        (
            "[raft]\ncompaction_min_entries = 'many'",
            '[raft] compaction_min_entries: expected a number, got "many"',
        ),
        ("[rate_limit]\nservice = -1", "[rate_limit] service: must be at least 0, got -1"),
        ("[auth]\nrefresh_ttl = '1 day'", "[auth] refresh_ttl: expected a duration"),
        ("[agent]\napi_port = 70000", "[agent] api_port: must be at most 65535, got 70000"),
        (
            "[agent]\ndriver = 'podman'",
            '[agent] driver: expected one of auto, docker, exec, got "podman"',
        ),
        ("[agent]\nport_range = '5-1'", "[agent] port_range: port range '5-1' must satisfy"),
        ("[agent]\nhost_ip = 1", "[agent] host_ip: expected a string, got 1"),
        ("[logs]\nmax_bytes_per_alloc = 'lots'", "[logs] max_bytes_per_alloc: expected a size"),
        ("[metrics]\ninterval = '10ms'", "[metrics] interval: must be at least 0.05s, got 0.01s"),
        ('[gc]\nkeep_per_group = "x"', '[gc] keep_per_group: expected an integer, got "x"'),
        ("gc = 5", "[gc] in heroctl.toml: expected a table, got 5"),
    ],
)
def test_wrong_types_stop_the_server(tmp_path: Path, text: str, message: str) -> None:
    assert error_of(tmp_path, 'data_dir = "/tmp/x"\n' + text).startswith(message)


def test_a_wrong_environment_variable_is_named() -> None:
    env = {"HEROCTL_GC_KEEP_PER_GROUP": "x"}
    with pytest.raises(
        ConfigError, match='^HEROCTL_GC_KEEP_PER_GROUP: expected an integer, got "x"'
    ):
        read_config(None, env)
    with pytest.raises(ConfigError, match="^HEROCTL_RAFT_NO_LEADER_TIMEOUT: expected a duration"):
        read_config(None, {"HEROCTL_RAFT_NO_LEADER_TIMEOUT": "soon"})


def test_every_settings_field_has_a_reader() -> None:
    # Table() refuses a table whose readers do not match its dataclass: importing proves it.
    assert set(TABLES) == {
        *("raft", "rate_limit", "auth", "webhooks", "agent", "logs", "metrics", "gc", "tls"),
        *("ingress", "acme", "api", "backup"),
    }


def test_backup_settings_from_table_and_environment(tmp_path: Path) -> None:
    cfg = read_config(None, {})
    assert (cfg.backup.interval, cfg.backup.dir, cfg.backup.keep) == (0.0, "", 24)
    cfg = from_file(
        tmp_path,
        'data_dir = "/tmp/x"\n[backup]\ninterval = "1h"\ndir = "/var/backups/heroctl"\nkeep = 7\n',
    )
    assert (cfg.backup.interval, cfg.backup.dir, cfg.backup.keep) == (
        3600.0,
        "/var/backups/heroctl",
        7,
    )
    env = {"HEROCTL_BACKUP_INTERVAL": "30m", "HEROCTL_BACKUP_KEEP": "3"}
    cfg = read_config(None, env)
    assert (cfg.backup.interval, cfg.backup.keep) == (1800.0, 3)
    with pytest.raises(ConfigError, match="^HEROCTL_BACKUP_KEEP: must be at least 1"):
        read_config(None, {"HEROCTL_BACKUP_KEEP": "0"})


def test_ingress_acme_and_api_settings() -> None:
    cfg = read_config(None, {})
    assert (cfg.ingress.http_port, cfg.ingress.https_port, cfg.ingress.bind) == (80, 443, "")
    assert cfg.acme.directory.startswith("https://acme-v02.api.letsencrypt.org/")
    env = {
        "HEROCTL_INGRESS_HTTP_PORT": "8080",
        "HEROCTL_INGRESS_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
        "HEROCTL_API_DOMAIN": "Example.COM",
        "HEROCTL_ACME_DIRECTORY": "https://127.0.0.1:14000/dir",
    }
    cfg = read_config(None, env)
    assert cfg.ingress.http_port == 8080 and cfg.api.domain == "example.com"
    assert cfg.ingress.trusted_proxies == ["10.0.0.1/32", "192.168.0.0/16"]
    for bad, words in (
        ({"HEROCTL_INGRESS_TRUSTED_PROXIES": "nowhere"}, "not an address"),
        ({"HEROCTL_API_DOMAIN": "not a domain"}, "DNS domain"),
        ({"HEROCTL_ACME_DIRECTORY": "ftp://x"}, "http(s) URL"),
        ({"HEROCTL_INGRESS_HTTPS_PORT": "70000"}, "HEROCTL_INGRESS_HTTPS_PORT"),
    ):
        with pytest.raises(ConfigError, match=re.escape(words)):
            read_config(None, bad)


def test_logs_and_metrics_settings() -> None:
    logs, metrics = load_logs_metrics({}, {})
    assert (logs.retention, logs.max_bytes_per_alloc, metrics.interval) == (86400, 10 * 2**20, 10)
    logs, metrics = load_logs_metrics(
        {"logs": {"retention": "90m", "max-bytes-per-alloc": "512KiB"}, "metrics": {"interval": 5}},
        {"HEROCTL_METRICS_INTERVAL": "1"},
    )
    assert (logs.retention, logs.max_bytes_per_alloc, metrics.interval) == (5400, 512 * 1024, 1)
    for bad in (
        {"logs": {"retention": "soon"}},
        {"logs": {"colour": 1}},
        {"metrics": {"interval": "0"}},
        {"logs": {"max_bytes_per_alloc": "-1"}},
    ):
        with pytest.raises(ConfigError):
            load_logs_metrics(bad, {})


def test_agent_api_settings_from_table_and_environment() -> None:
    assert load_agent_settings({}, {}).api_port == 7072
    settings = load_agent_settings({"api-port": 7100, "api_bind": "10.0.0.21"}, {})
    assert (settings.api_port, settings.api_bind) == (7100, "10.0.0.21")
    env = {"HEROCTL_AGENT_API_PORT": "0", "HEROCTL_AGENT_API_BIND": "127.0.0.1"}
    settings = load_agent_settings({"api_port": 7100}, env)
    assert (settings.api_port, settings.api_bind) == (0, "127.0.0.1")
    for bad in ({"api_port": 70000}, {"api_port": "many"}, {"api_port": -1}):
        with pytest.raises(ConfigError):
            load_agent_settings(bad, {})


def test_the_ingress_release_timeout_is_a_duration() -> None:
    assert load_agent_settings({}, {}).ingress_release_timeout == 10.0
    assert load_agent_settings({"ingress_release_timeout": "2m"}, {}).ingress_release_timeout == 120
    env = {"HEROCTL_AGENT_INGRESS_RELEASE_TIMEOUT": "500ms"}
    assert load_agent_settings({"ingress_release_timeout": 3}, env).ingress_release_timeout == 0.5
    for bad in ({"ingress_release_timeout": "soon"}, {"ingress_release_timeout": -1}):
        with pytest.raises(ConfigError):
            load_agent_settings(bad, {})


def test_agent_drivers_default_to_docker_and_exec_is_enabled_on_purpose(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert load_agent_settings({}, {}).drivers == ["docker"]
    assert load_agent_settings({"drivers": ["exec"]}, {}).drivers == ["exec"]
    env = {"HEROCTL_AGENT_DRIVERS": "docker, exec"}
    assert load_agent_settings({}, env).drivers == ["docker", "exec"]
    for bad in (["qemu"], [], "", 3):
        with pytest.raises(
            ConfigError, match=r"\[agent\] drivers: expected a list of docker, exec"
        ):
            load_agent_settings({"drivers": bad}, {})
    # The deprecated `driver` still works, and says what it stands for.
    with caplog.at_level(logging.WARNING, logger="heroctl"):
        assert load_agent_settings({"driver": "auto"}, {}).drivers == ["docker", "exec"]
    assert '[agent] driver = "auto" is deprecated: it stands for drivers = ["docker", "exec"]' in (
        caplog.text
    )
    assert load_agent_settings({}, {"HEROCTL_AGENT_DRIVER": "exec"}).drivers == ["exec"]
    with pytest.raises(ConfigError, match="drivers replaces driver"):
        load_agent_settings({"driver": "exec", "drivers": ["exec"]}, {})


def test_gc_settings_from_toml_and_env() -> None:
    gc = load_gc({"alloc_threshold": "2h", "keep-per-group": 1}, {"HEROCTL_GC_INTERVAL": "30s"})
    assert (gc.alloc_threshold, gc.keep_per_group, gc.interval, gc.batch_size) == (
        7200.0,
        1,
        30.0,
        256,
    )
    with pytest.raises(ConfigError, match='unknown key "gc.nope"'):
        load_gc({"nope": 1}, {})
    with pytest.raises(ConfigError, match=r"\[gc\] keep_per_group: must be at least 0"):
        load_gc({"keep_per_group": -1}, {})
    with pytest.raises(ConfigError, match="batch_size"):
        load_gc({"batch_size": 0}, {})
    cfg = load_config(None, {"dev": True}, env={"HEROCTL_GC_ALLOC_THRESHOLD": "90"})
    assert cfg.gc.alloc_threshold == 90.0 and cfg.gc.keep_per_group == 3


def test_tls_is_on_by_default_and_off_in_dev(tmp_path: Path) -> None:
    cfg = from_file(tmp_path, 'data_dir = "/tmp/x"\n')
    assert cfg.tls.mode == "cluster-ca" and cfg.api_address.startswith("https://")
    cfg = from_file(tmp_path, 'data_dir = "/tmp/x"\n', {"HEROCTL_TLS_MODE": "off"})
    assert cfg.api_address.startswith("http://")
    cfg = load_config(None, {"dev": True, "data_dir": str(tmp_path)}, env={})
    assert cfg.tls.mode == "off" and cfg.api_address == "http://127.0.0.1:7070"
    cfg = from_file(tmp_path, 'data_dir = "/tmp/x"\n[tls]\ncert_lifetime = "30d"\n')
    assert cfg.tls.cert_lifetime == 30 * 86400


def test_tls_mistakes_stop_the_server(tmp_path: Path) -> None:
    assert "expected one of cluster-ca, files, off" in error_of(
        tmp_path, 'data_dir = "/tmp/x"\n[tls]\nmode = "on"\n'
    )
    assert "needs cert_file and key_file" in error_of(
        tmp_path, 'data_dir = "/tmp/x"\n[tls]\nmode = "files"\ncert_file = "c.pem"\n'
    )
    assert "HEROCTL_TLS_CERT_LIFETIME" in error_of(
        tmp_path, 'data_dir = "/tmp/x"\n', {"HEROCTL_TLS_CERT_LIFETIME": "1s"}
    )


def test_session_and_webhook_settings_from_toml_and_env(tmp_path: Path) -> None:
    cfg = read_config(None, {})
    assert (cfg.auth.max_sessions, cfg.auth.refresh_grace, cfg.webhooks.allow_private) == (
        20,
        10.0,
        False,
    )
    text = "[auth]\nmax_sessions = 5\nrefresh_grace = '2s'\n[webhooks]\nallow_private = true\n"
    cfg = from_file(tmp_path, 'data_dir = "/tmp/x"\n' + text)
    assert (cfg.auth.max_sessions, cfg.auth.refresh_grace, cfg.webhooks.allow_private) == (
        5,
        2.0,
        True,
    )
    env = {"HEROCTL_AUTH_MAX_SESSIONS": "3", "HEROCTL_WEBHOOKS_ALLOW_PRIVATE": "false"}
    cfg = from_file(tmp_path, 'data_dir = "/tmp/x"\n' + text, env)
    assert (cfg.auth.max_sessions, cfg.webhooks.allow_private) == (3, False)
    for bad, message in (
        ("[auth]\nmax_sessions = 0", "[auth] max_sessions: must be at least 1, got 0"),
        ("[webhooks]\nallow_private = 'yes'", "[webhooks] allow_private: expected true or false"),
        ("[webhooks]\nallow_privat = true", 'unknown key "webhooks.allow_privat"'),
    ):
        assert error_of(tmp_path, 'data_dir = "/tmp/x"\n' + bad).startswith(message)
