"""`heroctl login/logout`, `heroctl acl ...` and `heroctl secret ...` against a real server."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from tests.support.cluster import Cluster, Server
from tests.support.http import request

PASSWORD = "cli-admin-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(tmp_path_factory.mktemp("cli-sec"), 1, env={"HEROCTL_ADMIN_PASSWORD": PASSWORD})
    c.start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def runner(home: Path) -> CliRunner:
    return CliRunner(
        env={"HEROCTL_ADDR": None, "HEROCTL_TOKEN": None, "XDG_CONFIG_HOME": str(home)}
    )


def heroctl(
    server: Server, home: Path, *args: str, input: str | None = None, token: str | None = None
) -> Result:
    extra = ["--token", token] if token else []
    return runner(home).invoke(cli, ["--address", server.url, *extra, *args], input=input)


def ok(r: Result) -> str:
    assert r.exit_code == 0, (r.exit_code, r.output, r.exception)
    return r.stdout


def creds_file(home: Path) -> Path:
    return home / "heroctl" / "credentials.json"


def test_login_saves_0600_refreshes_and_logs_out(server: Server, home: Path) -> None:
    out = ok(
        heroctl(server, home, "login", "-u", "admin", "--password-stdin", input=PASSWORD + "\n")
    )
    assert "Logged in" in out
    path = creds_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["refresh_token"].startswith("rt_") and saved["address"] == server.url
    ok(heroctl(server, home, "job", "list"))  # uses the saved token
    # near expiry, the next command swaps the pair first
    saved["expires_at"] = "2000-01-01T00:00:00Z"
    path.write_text(json.dumps(saved))
    ok(heroctl(server, home, "secret", "list"))
    fresh = json.loads(path.read_text())
    assert fresh["token"] != saved["token"] and fresh["refresh_token"] != saved["refresh_token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old = request(
        "GET", server.url + "/v1/jobs", headers={"Authorization": f"Bearer {saved['token']}"}
    )
    assert old.status == 401
    ok(heroctl(server, home, "logout"))
    assert not path.exists()
    dead = request(
        "GET", server.url + "/v1/jobs", headers={"Authorization": f"Bearer {fresh['token']}"}
    )
    assert dead.status == 401
    bad = heroctl(server, home, "login", "-u", "admin", "--password-stdin", input="nope\n")
    assert bad.exit_code == 1 and "invalid" in bad.stderr.lower()


def test_login_with_an_acl_token(server: Server, home: Path) -> None:
    assert server.token
    ok(heroctl(server, home, "login", "--token", "-", input=server.token + "\n"))
    assert ok(heroctl(server, home, "--json", "acl", "token", "self"))


def test_acl_tokens_and_policies(server: Server, home: Path) -> None:
    t = server.token
    rules = home / "ro.yaml"
    rules.write_text("jobs: read\nsecrets:\n  '*': list\n")
    ok(heroctl(server, home, "acl", "policy", "apply", "ro", str(rules), token=t))
    listed = ok(heroctl(server, home, "acl", "policy", "list", token=t))
    assert "ro" in listed and "jobs" in listed
    made = json.loads(
        ok(
            heroctl(
                server,
                home,
                "--json",
                "acl",
                "token",
                "create",
                "--name",
                "ci",
                "--policy",
                "ro",
                token=t,
            )
        )
    )
    assert made["secret_id"].startswith("ht_")
    table = ok(heroctl(server, home, "acl", "token", "list", token=t))
    assert made["accessor_id"] in table and made["secret_id"] not in table
    denied = heroctl(
        server, home, "job", "run", "-", input='{"name": "x"}', token=made["secret_id"]
    )
    assert denied.exit_code == 1 and "forbidden" in denied.stderr
    ok(heroctl(server, home, "acl", "token", "revoke", made["accessor_id"], "--yes", token=t))
    gone = heroctl(server, home, "job", "list", token=made["secret_id"])
    assert gone.exit_code == 1 and "invalid_token" in gone.stderr
    ok(heroctl(server, home, "acl", "policy", "delete", "ro", "--yes", token=t))


def test_secret_commands(server: Server, home: Path) -> None:
    t = server.token
    value = "multi\nline value with spaces  "
    out = ok(heroctl(server, home, "secret", "put", "cli_db", input=value, token=t))
    assert "version 1" in out
    ok(heroctl(server, home, "secret", "put", "cli_db", input="second\n", token=t))
    assert ok(heroctl(server, home, "secret", "get", "cli_db", token=t)) == "second"
    assert ok(heroctl(server, home, "secret", "get", "cli_db", "--version", "1", token=t)) == value
    f = home / "v.txt"
    f.write_text("from-file\n")
    ok(heroctl(server, home, "secret", "put", "cli_file", "--from-file", str(f), token=t))
    assert ok(heroctl(server, home, "secret", "get", "cli_file", token=t)) == "from-file\n"
    listing = ok(heroctl(server, home, "secret", "list", token=t))
    assert "cli_db" in listing and "second" not in listing
    assert "2" in ok(heroctl(server, home, "secret", "versions", "cli_db", token=t))
    assert "now version 3" in ok(
        heroctl(server, home, "secret", "rollback", "cli_db", "1", token=t)
    )
    assert ok(heroctl(server, home, "secret", "get", "cli_db", token=t)) == value
    ok(heroctl(server, home, "secret", "rm", "cli_db", "--yes", token=t))
    missing = heroctl(server, home, "secret", "get", "cli_db", token=t)
    assert missing.exit_code == 1 and "secret_not_found" in missing.stderr
    # the value is never an argument: there is no option for it
    assert heroctl(server, home, "secret", "put", "x", "value", token=t).exit_code == 2


def test_acl_bootstrap_command(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 1, bootstrap=False).start()
    try:
        s = c.servers[0]
        out = ok(heroctl(s, tmp_path, "--json", "acl", "bootstrap"))
        boot = json.loads(out)
        assert boot["secret_id"].startswith("ht_") and boot["password"]
        again = heroctl(s, tmp_path, "acl", "bootstrap")
        assert again.exit_code == 1 and "already_bootstrapped" in again.stderr
        ok(
            heroctl(
                s,
                tmp_path,
                "login",
                "-u",
                "admin",
                "--password-stdin",
                input=boot["password"] + "\n",
            )
        )
        ok(heroctl(s, tmp_path, "job", "list"))
    finally:
        c.stop()
        os.environ.pop("XDG_CONFIG_HOME", None)
