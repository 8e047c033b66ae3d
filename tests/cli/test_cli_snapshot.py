"""`heroctl operator snapshot save|restore|inspect` against a real single-node heroctld."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.results import ok
from tests.support.cluster import Server, wait_until


def job(name: str) -> dict[str, object]:
    task = {"name": "t", "driver": "exec", "command": "/bin/true"}
    return {"name": name, "type": "batch", "groups": [{"name": "g", "count": 1, "tasks": [task]}]}


def names(server: Server) -> set[str]:
    return {j["name"] for j in server.get("/v1/jobs").body}


def test_save_inspect_restore(heroctl, server: Server, tmp_path: Path) -> None:
    assert server.post("/v1/jobs", job("one")).status in (200, 201)
    file = tmp_path / "backup.snap"
    out = ok(heroctl("operator", "snapshot", "save", str(file)))
    assert out.startswith("Saved index ") and str(file) in out
    assert file.stat().st_mode & 0o777 == 0o600

    shown = ok(heroctl("operator", "snapshot", "inspect", str(file)))
    for words in ("Format", "Index", "Cluster ID", "hc-", "Checksum", "ok", "jobs"):
        assert words in shown, words
    info = json.loads(ok(heroctl("operator", "snapshot", "inspect", "--json", str(file))))
    assert info["checksum_ok"] is True and info["tables"]["jobs"] == 1 and info["format"] == 1

    assert server.post("/v1/jobs", job("two")).status in (200, 201)
    refused = heroctl("operator", "snapshot", "restore", str(file))  # no terminal: never asks
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert names(server) == {"one", "two"}

    out = ok(heroctl("operator", "snapshot", "restore", "--yes", str(file)))
    assert out.startswith(f"Restored {file} (index {info['index']} of {info['cluster_id']})")
    wait_until(lambda: names(server) == {"one"}, 10, message="restored")
    doc = json.loads(ok(heroctl("--json", "operator", "snapshot", "restore", "-y", str(file))))
    assert doc["restored_index"] == info["index"] and doc["tables"]["jobs"] == 1


def test_a_damaged_file_is_refused_before_anything_is_sent(
    heroctl, server: Server, tmp_path: Path
) -> None:
    good = tmp_path / "good.snap"
    ok(heroctl("operator", "snapshot", "save", str(good)))
    data = good.read_bytes()
    cut = tmp_path / "cut.snap"
    cut.write_bytes(data[:-7])
    for verb in (["inspect"], ["restore", "--yes"]):
        result = heroctl("operator", "snapshot", *verb, str(cut))
        assert result.exit_code == 1 and "snapshot_truncated" in result.stderr, result.output
    flipped = tmp_path / "flipped.snap"
    flipped.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    result = heroctl("operator", "snapshot", "inspect", str(flipped))
    assert result.exit_code == 1 and "does not match its sha256" in result.stderr
