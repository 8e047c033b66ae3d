"""`heroctl operator backup` against a real server."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from raft.state import State
from tests.support.cluster import Cluster


def test_backup_writes_a_loadable_snapshot(module_single: Cluster, tmp_path: Path) -> None:
    server = module_single.servers[0]
    assert server.post("/v1/jobs", {"name": "backed-up"}).status in (200, 201)
    out = tmp_path / "state.bak"
    args = ["--address", server.url, "--token", server.token or "", "operator", "backup", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "backed-up" in State.from_bytes(out.read_bytes()).table("jobs")
