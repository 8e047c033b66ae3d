"""`heroctl` against a real single-node heroctld (one server for the module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import Result

from tests.cli.results import ok
from tests.support.cluster import Server, free_port

REPO = Path(__file__).resolve().parents[2]


def failed(result: Result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    return result.stderr


WEB_YAML = """\
name: web
type: service
meta:
  released: 2024-01-01   # a YAML date: sent as a string
groups:
  - name: web
    count: 2
    tasks:
      - name: nginx
        image: nginx:1.27
"""


def test_job_run_yaml_then_list_and_status(heroctl, server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "web.yaml"
    spec.write_text(WEB_YAML)
    out = ok(heroctl("job", "run", "--detach", str(spec)))
    assert out.startswith("Job 'web' registered: version 0, job modify index ")

    stored = server.get("/v1/jobs/web").body
    assert stored["meta"]["released"] == "2024-01-01"

    lines = ok(heroctl("job", "list")).splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "STATUS", "VERSION", "MODIFY", "INDEX", "SUBMITTED"]
    row = next(line.split() for line in lines[1:] if line.split()[0] == "web")
    assert row[1:4] == ["service", "pending", "0"]
    assert row[4] == str(stored["job_modify_index"])

    listed = json.loads(ok(heroctl("job", "list", "--json")))
    assert listed == server.get("/v1/jobs").body
    assert json.loads(ok(heroctl("--json", "job", "list"))) == listed

    status = ok(heroctl("job", "status", "web"))
    assert status.splitlines()[0].split() == ["Name", "web"]
    assert "Status" in status and "pending" in status
    assert "image: nginx:1.27" in status
    # Placement results are written by the scheduler meanwhile; the job itself is the same.
    volatile = {"placement_failures", "deployment", "allocations", "status"}
    shown = json.loads(ok(heroctl("job", "status", "web", "--json")))
    assert {k: v for k, v in shown.items() if k not in volatile} == {
        k: v for k, v in stored.items() if k not in volatile
    }


def test_job_run_json_from_stdin_update_and_check_index(heroctl, server: Server) -> None:
    job = {
        "name": "api",
        "type": "batch",
        "groups": [{"name": "g", "count": 1, "tasks": [{"name": "t", "image": "x"}]}],
    }
    first = json.loads(ok(heroctl("job", "run", "--detach", "--json", "-", input=json.dumps(job))))
    assert first["version"] == 0 and first["type"] == "batch"

    job["groups"][0]["count"] = 3
    index = str(first["job_modify_index"])
    out = ok(heroctl("job", "run", "--detach", "--check-index", index, "-", input=json.dumps(job)))
    assert out.startswith("Job 'api' updated: version 1, ")

    # The same index again is stale now: a 409 with the server's explanation.
    err = failed(heroctl("job", "run", "--check-index", index, "-", input=json.dumps(job)))
    assert "job_modify_index" in err and "(conflict, request req_" in err

    history = ok(heroctl("job", "status", "api", "--versions")).splitlines()
    assert history[0].split()[:2] == ["VERSION", "STATUS"]
    assert history[1].split()[0] == "1" and history[1].split()[-1] == "groups"
    assert history[2].split()[0] == "0"
    versions = json.loads(ok(heroctl("job", "status", "api", "--versions", "--json")))
    assert [v["version"] for v in versions] == [1, 0]


def test_job_run_from_json_file(heroctl, tmp_path: Path) -> None:
    path = tmp_path / "worker.json"
    path.write_text(json.dumps({"name": "worker"}))
    assert ok(heroctl("job", "run", "--detach", str(path))).startswith("Job 'worker' registered")


def test_job_run_rejects_bad_files(heroctl, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("name: not-json")
    assert "bad.json is not valid JSON" in failed(heroctl("job", "run", str(bad)))
    assert "must contain one job" in failed(heroctl("job", "run", "-", input="[1, 2]"))
    err = failed(heroctl("job", "run", "-", input='{"name": "Not_A_Label"}'))
    assert "DNS label" in err and "(invalid_field, request req_" in err


def test_job_stop_then_status_is_a_clear_error(heroctl) -> None:
    ok(heroctl("job", "run", "--detach", "-", input='{"name": "doomed"}'))
    assert ok(heroctl("job", "stop", "doomed", "--yes")).startswith(
        "Job 'doomed' stopped and removed"
    )
    err = failed(heroctl("job", "status", "doomed"))
    assert err.startswith("Error: job 'doomed' does not exist (job_not_found, request req_")
    assert "job_not_found" in failed(heroctl("job", "stop", "doomed", "--yes"))


def test_cluster_status_and_peers(heroctl, server: Server) -> None:
    status = ok(heroctl("cluster", "status"))
    assert f"server-1 ({server.raft_address}), leader" in status
    assert "healthy: 1/1 members reachable" in status
    raw = json.loads(ok(heroctl("cluster", "status", "--json")))
    assert raw["is_leader"] is True and raw["node"] == "server-1"

    peers = ok(heroctl("cluster", "peers")).splitlines()
    assert peers[0].split()[:3] == ["NAME", "RAFT", "ADDRESS"]
    assert peers[1].split()[:4] == ["server-1", server.raft_address, server.url, "leader"]
    assert json.loads(ok(heroctl("--json", "cluster", "peers")))[0]["name"] == "server-1"


def test_transfer_leadership_on_a_single_node_is_a_readable_error(heroctl) -> None:
    err = failed(heroctl("cluster", "transfer-leadership"))
    assert "(transfer_failed, request req_" in err
    err = failed(heroctl("cluster", "transfer-leadership", "--to", "nosuch"))
    assert err.startswith("Error: no server named 'nosuch' (peer_not_found, request req_")


def test_unreachable_address_names_the_address(heroctl) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    err = failed(heroctl("cluster", "status", address=address))
    assert f"could not reach the HeroCtl API at {address}: connection refused" in err


def test_options_after_the_command_override_the_global_ones(heroctl, server: Server) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out = ok(heroctl("cluster", "status", "--address", server.url, "--json", address=dead))
    assert json.loads(out)["node"] == "server-1"


def test_console_script_module_with_env_address(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "HEROCTL_ADDR": server.url, "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("HEROCTL_TOKEN", None)
    if server.token:
        env["HEROCTL_TOKEN"] = server.token
    cmd = [sys.executable, "-m", "cli.main"]
    done = subprocess.run(
        [*cmd, "--json", "cluster", "status"], env=env, cwd=REPO, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["leader"] == "server-1"

    env["HEROCTL_ADDR"] = f"127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*cmd, "job", "list"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(
        f"Error: could not reach the HeroCtl API at http://{env['HEROCTL_ADDR']}"
    )
