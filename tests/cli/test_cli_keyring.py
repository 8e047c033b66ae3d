"""`heroctl operator keyring list|rotate` against a real single-node heroctld."""

from __future__ import annotations

import json

from tests.cli.results import ok
from tests.support.cluster import Server


def test_rotate_follows_the_reencryption_until_the_old_key_is_gone(heroctl, server: Server) -> None:
    assert "No keyring yet" in ok(heroctl("operator", "keyring", "list"))
    for i in range(40):
        assert server.post("/v1/secrets", {"name": f"s{i}", "value": f"v{i}"}).status in (200, 201)
    before = json.loads(ok(heroctl("--json", "operator", "keyring", "list")))
    (old,) = before["keys"]
    assert old["primary"] and old["secret_versions"] == 40
    listed = ok(heroctl("operator", "keyring", "list"))
    assert old["id"] in listed and "40" in listed

    refused = heroctl("operator", "keyring", "rotate")  # stdin is no terminal: never asks
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert server.get("/v1/operator/keyring").body["primary"] == old["id"]

    out = ok(heroctl("operator", "keyring", "rotate", "--yes"))
    ring = server.get("/v1/operator/keyring").body
    assert ring["primary"] != old["id"] and [k["id"] for k in ring["keys"]] == [ring["primary"]]
    assert ring["keys"][0]["secret_versions"] == 40
    lines = out.splitlines()
    assert lines[0] == f"New primary key {ring['primary']}; 40 secret version(s) to re-encrypt."
    assert lines[1] == "re-encrypting: 40 secret version(s) left under 1 old key(s)"
    assert (
        lines[-1] == f"Keyring rotated: every secret is under {ring['primary']}, old keys dropped."
    )
    assert server.get("/v1/secrets/s7").body["value"] == "v7"


def test_rotate_detached_and_as_json(heroctl, server: Server) -> None:
    out = ok(heroctl("operator", "keyring", "rotate", "--yes", "--detach"))
    assert "goes on in the background" in out
    doc = json.loads(ok(heroctl("--json", "operator", "keyring", "rotate", "-y")))
    assert doc["finished"] is True and doc["primary"] == doc["rotated_to"]
    assert [k["id"] for k in doc["keys"]] == [doc["primary"]]
