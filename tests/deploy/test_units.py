"""The systemd units in deploy/: `systemd-analyze verify` passes on both
(with ExecStart pointed at a staged executable: verify checks that it
exists), and they say what the daemon relies on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("heroctld.service", "heroctl-agent.service")
ANALYZE = shutil.which("systemd-analyze")


def settings(unit: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / unit)
    return {name: dict(parser[name]) for name in parser.sections()}


def verify(unit_file: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def staged(unit: str, tmp_path: Path) -> Path:
    """The unit with its ExecStart binary replaced by an executable in ``tmp_path``."""
    binary = tmp_path / "bin" / "heroctld"
    binary.parent.mkdir(exist_ok=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    path = tmp_path / unit
    path.write_text((DEPLOY / unit).read_text().replace("/usr/local/bin/heroctld", str(binary)))
    return path


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_passes(unit: str, tmp_path: Path) -> None:
    proc = verify(staged(unit, tmp_path))
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    bad = tmp_path / f"bad-{unit}"  # the check does fail a broken unit
    bad.write_text(staged(unit, tmp_path).read_text().replace("KillMode=process", "KillMode=x"))
    assert "kill mode" in verify(bad).stderr


@pytest.mark.parametrize("unit", UNITS)
def test_the_units_notify_keep_tasks_alive_and_harden(unit: str) -> None:
    s = settings(unit)
    service, wants = s["Service"], s["Unit"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30s" and service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "process" and service["Restart"] == "always"
    assert "docker.service" in wants["After"] and "docker.service" in wants["Wants"]
    for key, value in {
        "ProtectSystem": "full",
        "ProtectHome": "read-only",
        "NoNewPrivileges": "yes",
    }.items():
        assert service[key] == value
    assert "PrivateTmp" not in service and "ProtectControlGroups" not in service
    assert s["Install"]["WantedBy"] == "multi-user.target"


def test_one_machine_runs_a_server_or_a_worker() -> None:
    server, agent = settings("heroctld.service"), settings("heroctl-agent.service")
    assert server["Unit"]["Conflicts"] == "heroctl-agent.service"
    assert agent["Unit"]["Conflicts"] == "heroctld.service"
    assert server["Service"]["ExecStart"] == (
        "/usr/local/bin/heroctld --config /etc/heroctl/heroctld.toml"
    )
    assert server["Service"]["EnvironmentFile"] == "/etc/heroctl/heroctl.env"
    assert server["Service"]["TimeoutStartSec"] == "infinity"  # a new cluster waits for peers
    assert agent["Service"]["ExecStart"].startswith("/usr/local/bin/heroctld agent --config ")
    assert agent["Service"]["EnvironmentFile"] == "/etc/heroctl/heroctl-agent.env"
