"""`heroctl ingress ...` against a real single-node heroctld."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.api.test_ingress import cert_for, web_job
from tests.cli.results import ok
from tests.support.cluster import Cluster, Server

Run = Callable[..., Result]


@pytest.fixture(scope="module")
def server(module_single: Cluster) -> Server:
    return module_single.servers[0]


def test_add_list_status_renew_rm(module_single: Cluster, heroctl: Run, tmp_path: Path) -> None:
    server = module_single.servers[0]
    assert server.post("/v1/jobs", web_job("cli-web", "cli.example.com")).status == 201
    out = ok(heroctl("ingress", "add", "extra.example.com", "-r", "/=cli-web.web:http"))
    assert "extra.example.com: 1 route(s), TLS acme." in out
    listed = ok(heroctl("ingress", "list"))
    assert "cli.example.com" in listed and "job cli-web" in listed and "extra.example.com" in listed
    rows = json.loads(ok(heroctl("--json", "ingress", "list")))
    assert {r["host"] for r in rows} >= {"cli.example.com", "extra.example.com"}
    status = ok(heroctl("ingress", "status", "cli.example.com"))
    assert "pending" in status and "No allocations: requests get 503." in status
    assert "requested" in ok(heroctl("ingress", "renew", "extra.example.com"))
    assert "no longer served" in ok(heroctl("ingress", "rm", "extra.example.com", "--yes"))
    gone = heroctl("ingress", "status", "extra.example.com")
    assert gone.exit_code == 1 and "ingress_not_found" in gone.stderr


def test_add_with_a_certificate_from_files(
    module_single: Cluster, heroctl: Run, tmp_path: Path
) -> None:
    server = module_single.servers[0]
    if server.get("/v1/jobs/cli-web").status == 404:
        assert server.post("/v1/jobs", web_job("cli-web", "cli.example.com")).status == 201
    cert, key = cert_for("own.example.com")
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    args = ["--cert-file", str(tmp_path / "c.pem"), "--key-file", str(tmp_path / "k.pem")]
    out = ok(heroctl("ingress", "add", "own.example.com", "-r", "/=cli-web.web:http", *args))
    assert "TLS manual" in out
    status = ok(heroctl("ingress", "status", "own.example.com"))
    assert "valid" in status and "PRIVATE" not in status
    bad = heroctl("ingress", "add", "x.example.com", "-r", "nonsense")
    assert bad.exit_code == 2 and "PATH=JOB.GROUP:PORT" in bad.output
