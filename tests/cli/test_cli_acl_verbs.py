"""`heroctl acl user|role|policy|token ...` verbs against a real single-node heroctld."""

from __future__ import annotations

import json
import time
from datetime import datetime

from click.testing import Result

from tests.cli.results import ok
from tests.support.cluster import Server
from tests.support.http import request


def failed(result: Result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert result.stderr.startswith("Error: "), result.stderr
    return result.stderr


def login(server: Server, username: str, password: str) -> int:
    body = {"username": username, "password": password}
    return request("POST", server.url + "/v1/auth/login", body).status


def test_users_create_list_show_passwd_rm(heroctl, server: Server) -> None:
    ok(heroctl("acl", "policy", "apply", "readonly", "-", input="jobs: read\n"))
    out = ok(
        heroctl(
            "acl",
            "user",
            "create",
            "alice",
            "--policy",
            "readonly",
            "--password-stdin",
            input="first-password-1\n",
        )
    )
    assert out == "User 'alice' created.\n"
    assert login(server, "alice", "first-password-1") == 200

    listed = ok(heroctl("acl", "user", "list"))
    row = next(line.split() for line in listed.splitlines() if line.startswith("alice "))
    assert row[:5] == ["alice", "client", "readonly", "-", "set"]
    shown = json.loads(ok(heroctl("--json", "acl", "user", "show", "alice")))
    assert shown["policies"] == ["readonly"] and "password_hash" not in shown

    out = ok(
        heroctl("acl", "user", "passwd", "alice", "--password-stdin", input="second-password-2\n")
    )
    assert "Password of 'alice' changed" in out
    assert login(server, "alice", "first-password-1") == 401
    assert login(server, "alice", "second-password-2") == 200
    # passwd never creates a user a typo names
    assert "user_not_found" in failed(
        heroctl("acl", "user", "passwd", "alcie", "--password-stdin", input="x-password-33\n")
    )
    assert server.get("/v1/acl/users/alcie").status == 404
    # no terminal to ask on, no --password-stdin: refused, nothing sent
    assert "--password-stdin" in failed(heroctl("acl", "user", "create", "bob"))

    # update: what is given replaces, what is not stays (the password too)
    ok(heroctl("acl", "policy", "apply", "writer", "-", input="jobs: write\n"))
    shown = ok(heroctl("acl", "user", "update", "alice", "--policy", "writer", "--type", "client"))
    assert "writer" in shown and "readonly" not in shown
    assert login(server, "alice", "second-password-2") == 200
    cleared = json.loads(ok(heroctl("--json", "acl", "user", "update", "alice", "--no-policies")))
    assert cleared["policies"] == [] and cleared["type"] == "client"
    assert "user_not_found" in failed(heroctl("acl", "user", "update", "alcie", "--no-roles"))
    assert server.get("/v1/acl/users/alcie").status == 404
    refused = heroctl("acl", "user", "update", "alice")
    assert refused.exit_code == 2 and "nothing to change" in refused.stderr

    assert "--yes" in failed(heroctl("acl", "user", "rm", "alice"))  # stdin is no terminal
    assert server.get("/v1/acl/users/alice").status == 200
    assert ok(heroctl("acl", "user", "rm", "alice", "--yes")) == "User 'alice' deleted.\n"
    assert server.get("/v1/acl/users/alice").status == 404


def test_roles_create_list_show_rm(heroctl, server: Server) -> None:
    ok(heroctl("acl", "policy", "apply", "deployer", "-", input="jobs: write\n"))
    out = ok(
        heroctl("acl", "role", "create", "ci", "--policy", "deployer", "--description", "CI jobs")
    )
    assert out == "Role 'ci' created.\n"
    assert "role_exists" in failed(heroctl("acl", "role", "create", "ci", "--policy", "deployer"))
    listed = ok(heroctl("acl", "role", "list"))
    assert any(line.split()[:3] == ["ci", "deployer", "CI"] for line in listed.splitlines())
    shown = ok(heroctl("acl", "role", "show", "ci"))
    assert "Policies" in shown and "deployer" in shown and "CI jobs" in shown
    ok(heroctl("acl", "policy", "apply", "reader", "-", input="jobs: read\n"))
    out = ok(heroctl("acl", "role", "update", "ci", "--policy", "reader", "--policy", "deployer"))
    assert out == "Role 'ci' updated: policies deployer, reader.\n"  # sorted
    role = server.get("/v1/acl/roles/ci").body
    assert role["policies"] == ["deployer", "reader"] and role["description"] == "CI jobs"
    ok(heroctl("acl", "role", "update", "ci", "--description", "CI"))
    assert server.get("/v1/acl/roles/ci").body["policies"] == ["deployer", "reader"]
    assert "role_not_found" in failed(heroctl("acl", "role", "update", "cj", "--description", "x"))
    assert server.get("/v1/acl/roles/cj").status == 404
    # a token may carry the role
    made = json.loads(ok(heroctl("--json", "acl", "token", "create", "--role", "ci")))
    assert made["roles"] == ["ci"]
    ok(heroctl("acl", "token", "rm", made["accessor_id"], "-y"))
    assert ok(heroctl("acl", "role", "rm", "ci", "--yes")) == "Role 'ci' deleted.\n"
    assert "role_not_found" in failed(heroctl("acl", "role", "show", "ci"))


def test_policy_show_prints_rules_apply_takes(heroctl, server: Server, tmp_path) -> None:
    rules = "jobs: write\nsecrets:\n  db_*: read\n"
    ok(heroctl("acl", "policy", "apply", "app", "-", "--description", "the app", input=rules))
    out = ok(heroctl("acl", "policy", "show", "app"))
    assert "the app" in out
    printed = out.split("Rules:\n", 1)[1]
    again = tmp_path / "again.yaml"
    again.write_text(printed)
    ok(heroctl("acl", "policy", "apply", "app2", str(again)))
    assert (
        server.get("/v1/acl/policies/app2").body["rules"]
        == (server.get("/v1/acl/policies/app").body["rules"])
    )
    assert json.loads(ok(heroctl("--json", "acl", "policy", "show", "app")))["name"] == "app"
    assert "policy_not_found" in failed(heroctl("acl", "policy", "show", "nope"))
    # rm is the verb; delete, the older name, still works
    ok(heroctl("acl", "policy", "rm", "app2", "--yes"))
    ok(heroctl("acl", "policy", "delete", "app", "--yes"))
    assert server.get("/v1/acl/policies/app").status == 404


def test_token_show_self_and_by_accessor_and_ttl_as_duration(heroctl, server: Server) -> None:
    me = json.loads(ok(heroctl("--json", "acl", "token", "show")))
    assert me["type"] == "management"
    assert json.loads(ok(heroctl("--json", "acl", "token", "self"))) == me  # the older name
    made = json.loads(
        ok(heroctl("--json", "acl", "token", "create", "--type", "management", "--ttl", "1h30m"))
    )
    shown = json.loads(ok(heroctl("--json", "acl", "token", "show", made["accessor_id"])))
    assert shown["accessor_id"] == made["accessor_id"] and "secret_id" not in shown
    expires = datetime.fromisoformat(shown["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (time.time() + 5400)) < 120
    text = ok(heroctl("acl", "token", "show", made["accessor_id"]))
    assert made["accessor_id"] in text and made["secret_id"] not in text
    assert heroctl("acl", "token", "create", "--ttl", "soon").exit_code == 2
    assert heroctl("acl", "token", "create", "--ttl", "0s").exit_code == 2
    ok(heroctl("acl", "token", "revoke", made["accessor_id"], "--yes"))  # the older name
    assert "token_not_found" in failed(heroctl("acl", "token", "show", made["accessor_id"]))
