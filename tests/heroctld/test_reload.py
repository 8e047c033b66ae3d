"""SIGHUP's reload (heroctld.reload): what a changed config file applies at
once, what it names as waiting for a restart, and a file that no longer
reads, which changes nothing."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest

from api.security.runtime import SecuritySettings
from domain.pki import issue_server_cert, new_ca
from heroctld.config import load_config
from heroctld.reload import Reloader, set_log_level
from heroctld.server import security_settings, server_tls
from raft.keys import generate_cluster_key

KEY = generate_cluster_key()


@pytest.fixture(autouse=True)
def _keep_root_level():
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


def loader(path: Path, flags: dict[str, object] | None = None):
    args = {"data_dir": str(path.parent / "data"), "node_name": "s1", **(flags or {})}
    return lambda: load_config(str(path), dict(args), env={"HEROCTL_CLUSTER_KEY": KEY})


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def started(path: Path, flags: dict[str, object] | None = None):
    load = loader(path, flags)
    cfg = load()
    settings = security_settings(cfg)
    return cfg, settings, Reloader(cfg, load, settings, server_tls(cfg)), load


def test_log_level_rate_limits_and_auth_apply_at_once(tmp_path: Path, caplog) -> None:
    conf = write(tmp_path / "h.toml", '[tls]\nmode = "off"\n')
    cfg, settings, reloader, _ = started(conf)
    write(
        conf,
        'log_level = "debug"\nnode_ttl = 20\n[tls]\nmode = "off"\n'
        '[rate_limit]\ndefault = 7\nservice = 0\n[auth]\njwt_ttl = "1h"\nmax_sessions = 3\n'
        "[raft]\nelection_timeout_max = 2.0\n",
    )
    with caplog.at_level(logging.INFO, logger="heroctld"):
        assert reloader.reload() == ["log_level", "[rate_limit]", "[auth]"]
    assert logging.getLogger().level == logging.DEBUG and cfg.log_level == "debug"
    assert (settings.rate_default, settings.rate_management, settings.rate_service) == (
        7,
        10_000,
        0,
    )
    assert (settings.jwt_ttl, settings.max_sessions) == (3600, 3)
    assert "applied at the next restart: node_ttl, [raft] election_timeout_max" in caplog.text
    assert cfg.node_ttl == 10.0  # not applied
    with caplog.at_level(logging.INFO, logger="heroctld"):
        assert reloader.reload() == []  # the same file again: nothing new
    assert "nothing that can change without a restart changed" in caplog.text


def test_the_command_line_still_wins(tmp_path: Path) -> None:
    conf = write(tmp_path / "h.toml", '[tls]\nmode = "off"\n')
    cfg, _, reloader, _ = started(conf, {"log_level": "warning"})
    write(conf, 'log_level = "debug"\n[tls]\nmode = "off"\n')
    assert reloader.reload() == [] and cfg.log_level == "warning"


def test_a_file_that_no_longer_reads_changes_nothing(tmp_path: Path, caplog) -> None:
    conf = write(tmp_path / "h.toml", '[tls]\nmode = "off"\n[rate_limit]\ndefault = 5\n')
    _, settings, reloader, _ = started(conf)
    write(conf, 'log_level = "debug"\n[rate_limit]\ndefault = "many"\n')
    with caplog.at_level(logging.INFO, logger="heroctld"):
        assert reloader.reload() == []
    assert "keeping the running settings" in caplog.text and settings.rate_default == 5
    assert KEY not in caplog.text


def test_without_a_loader_there_is_nothing_to_do() -> None:
    cfg = load_config(None, {"dev": True}, env={})
    tls = server_tls(cfg)
    assert Reloader(cfg, None, SecuritySettings(cfg.cluster_key), tls).reload() == []
    assert not set_log_level("loud")


def test_tls_files_are_served_again_from_new_paths(tmp_path: Path) -> None:
    ca = new_ca("own")
    for n in (1, 2):
        leaf = issue_server_cert(ca, "s1", ["127.0.0.1"], datetime.timedelta(days=1))
        write(tmp_path / f"cert{n}.pem", leaf.cert_pem)
        write(tmp_path / f"key{n}.pem", leaf.key_pem)
    write(tmp_path / "ca.pem", ca.cert_pem)

    def files(n: int) -> str:
        return (
            f'[tls]\nmode = "files"\ncert_file = "{tmp_path}/cert{n}.pem"\n'
            f'key_file = "{tmp_path}/key{n}.pem"\nca_file = "{tmp_path}/ca.pem"\n'
        )

    conf = write(tmp_path / "h.toml", files(1))
    cfg, _, reloader, _ = started(conf)
    first = reloader.tls.serial
    write(conf, files(2))
    assert reloader.reload() == ["[tls] files"]
    assert reloader.tls.serial != first and cfg.tls.cert_file.endswith("cert2.pem")
    write(conf, files(2).replace("cert2.pem", "missing.pem"))
    assert reloader.reload() == []  # logged; the running certificate stays
    assert cfg.tls.cert_file.endswith("cert2.pem")
