"""Bootstrap: nothing works before it, it works once, `--dev` prints its credentials;
JWT expiry and refresh-after-expiry (a cluster with a 2 s JWT lifetime)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.authutil import anon, as_, assert_error, login
from tests.support.cluster import Cluster, Server, free_port, wait_until
from tests.support.http import request


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(
        tmp_path_factory.mktemp("boot"), 1, bootstrap=False, env={"HEROCTL_AUTH_JWT_TTL": "2"}
    ).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


def test_bootstrap_once_then_login_and_expiry(fresh: Server) -> None:
    s = fresh
    assert s.token is None
    # before bootstrap: no identity exists at all
    assert_error(anon(s, "GET", "/v1/jobs"), 401, "missing_token")
    assert_error(
        anon(s, "GET", "/v1/jobs", headers={"Authorization": "Bearer ht_" + "a" * 43}), 401
    )
    r = anon(s, "POST", "/v1/auth/login", {"username": "admin", "password": "admin123"})
    assert_error(r, 401, "invalid_credentials")
    # a weak password is refused (the docs' admin123 can never be set)
    assert_error(anon(s, "POST", "/v1/acl/bootstrap", {"password": "admin123"}), 400)
    assert_error(anon(s, "POST", "/v1/acl/bootstrap", {"password": 5}), 400)
    assert_error(anon(s, "POST", "/v1/acl/bootstrap", raw=b"{"), 400, "invalid_json")
    r = anon(s, "POST", "/v1/acl/bootstrap")
    assert r.status == 201, r.raw
    boot = r.body
    assert boot["secret_id"].startswith("ht_") and boot["type"] == "management"
    assert boot["username"] == "admin" and len(boot["password"]) >= 16
    assert_error(anon(s, "POST", "/v1/acl/bootstrap"), 409, "already_bootstrapped")
    assert_error(anon(s, "POST", "/v1/acl/bootstrap", {"password": "another-long-one"}), 409)
    assert as_(s, boot["secret_id"], "GET", "/v1/jobs").status == 200
    r = anon(s, "POST", "/v1/auth/login", {"username": "admin", "password": "admin123"})
    assert_error(r, 401, "invalid_credentials")
    got = login(s, username="admin", password=boot["password"])
    assert as_(s, got["token"], "GET", "/v1/jobs").status == 200
    # the JWT expires (2 s here); the refresh token still gets a new pair
    wait_until(
        lambda: as_(s, got["token"], "GET", "/v1/jobs").status == 401,
        timeout=10,
        message="JWT expiry",
    )
    r = as_(s, got["token"], "GET", "/v1/jobs")
    assert_error(r, 401, "invalid_token")
    assert "expired" in r.body["message"]
    assert_error(
        anon(s, "POST", "/v1/auth/refresh", headers={"Authorization": f"Bearer {got['token']}"}),
        401,
    )
    r = anon(s, "POST", "/v1/auth/refresh", {"refresh_token": got["refresh_token"]})
    assert r.status == 200, r.raw
    assert as_(s, r.body["token"], "GET", "/v1/jobs").status == 200


def test_dev_mode_bootstraps_and_prints_credentials_once(tmp_path: Path) -> None:
    api, raft = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEROCTL_")}
    out_path = tmp_path / "dev.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "heroctld.main",
                "--dev",
                "--api-port",
                str(api),
                "--raft-port",
                str(raft),
                "--data-dir",
                str(tmp_path / "data"),
                "--no-agent",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        text = wait_until(
            lambda: (t := out_path.read_text()) and "management token:" in t and t,
            timeout=30,
            message="dev credentials",
        )
        password = re.search(r"admin password:\s+(\S+)", text).group(1)
        token = re.search(r"management token:\s+(ht_\S+)", text).group(1)
        url = f"http://127.0.0.1:{api}"
        assert f"plain HTTP (no TLS) on {url}" in text  # --dev says it is not TLS
        r = request("POST", url + "/v1/auth/login", {"username": "admin", "password": password})
        assert r.status == 200, r.raw
        r = request("GET", url + "/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 200
        assert text.count(token) == 2  # the banner line and the export hint, nothing else
    finally:
        proc.terminate()
        proc.wait(15)
