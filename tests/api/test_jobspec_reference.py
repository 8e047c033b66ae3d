"""The job spec reference against a real server: `GET /v1/jobs/schema` serves
the schema (a jobs read, never shadowed by a job: "schema" is no job's
name), and every job file in examples/ is accepted as it is, stored as the
validator normalizes it; with Docker, the batch example runs to completion
with its secret."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.jobspec import normalize_job
from domain.jobspec.job import SERVER_OWNED_FIELDS
from domain.jobspec.schema import job_schema
from domain.jobspec.schema_check import schema_errors
from tests.api.authutil import anon, as_, assert_error, make_token, put_policy
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.workloads import IMAGE, docker_unavailable

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.job.yaml"))
# What the examples need before they are submitted.
SECRETS = {"backup_db_password": "s3cret-for-the-backup"}


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES[0].parent / f"{name}.job.yaml").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(tmp_path_factory.mktemp("jobspec-reference"), 1).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


def test_the_schema_is_served_to_whoever_may_read_jobs(server: Server) -> None:
    r = server.get("/v1/jobs/schema")
    assert r.status == 200, r.raw[:300]
    assert r.header("Content-Type").startswith("application/schema+json")
    assert r.body == job_schema()
    put_policy(server, "jobs-reader", {"jobs": "read"})
    put_policy(server, "nodes-reader", {"nodes": "read"})
    reader = make_token(server, ["jobs-reader"])["secret_id"]
    assert as_(server, reader, "GET", "/v1/jobs/schema").body == job_schema()
    outsider = make_token(server, ["nodes-reader"])["secret_id"]
    assert_error(as_(server, outsider, "GET", "/v1/jobs/schema"), 403)
    assert_error(anon(server, "GET", "/v1/jobs/schema"), 401)


def test_schema_is_no_jobs_name(server: Server) -> None:
    spec = {"name": "schema", "image": "busybox:1"}
    r = server.post("/v1/jobs", spec)
    assert_error(r, 400, "invalid_field")
    assert r.body["message"].startswith("name: 'schema' is reserved")
    assert_error(server.post("/v1/jobs/schema/plan", spec), 400, "invalid_field")
    assert [e.path for e in schema_errors(spec)] == ["name"]
    assert_error(server.delete("/v1/jobs/schema"), 404, "job_not_found")
    assert server.get("/v1/jobs/schema").body == job_schema()  # still the schema


def test_the_examples_are_valid_jobs_here_and_on_the_server(server: Server) -> None:
    assert {p.name for p in EXAMPLES} >= {"web.job.yaml", "worker.job.yaml", "backup.job.yaml"}
    for name, value in SECRETS.items():
        assert server.post("/v1/secrets", {"name": name, "value": value}).status == 201
    for path in EXAMPLES:
        spec = yaml.safe_load(path.read_text())
        assert schema_errors(spec) == [], (path.name, schema_errors(spec))
        plan = server.post(f"/v1/jobs/{spec['name']}/plan", spec)
        assert plan.status == 200, (path.name, plan.raw[:300])
        r = server.post("/v1/jobs", spec)
        assert r.status == 201, (path.name, r.raw[:300])
        stored = server.get(f"/v1/jobs/{spec['name']}").body
        expected = normalize_job(copy.deepcopy(spec))
        assert {k: stored[k] for k in expected} == expected, path.name
        again = {k: v for k, v in stored.items() if k in expected or k in SERVER_OWNED_FIELDS}
        assert schema_errors(again) == [], (path.name, schema_errors(again))


_NO_DOCKER = docker_unavailable()


@pytest.mark.docker
@pytest.mark.skipif(_NO_DOCKER is not None, reason=_NO_DOCKER or "")
def test_the_batch_example_runs_to_completion_with_its_secret(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The backup example on a node with Docker, its image swapped for the
    tests' local busybox: it exits 0 only if its secret reached it."""
    c = Cluster(tmp_path_factory.mktemp("jobspec-batch"), 1, agent=True).start()
    try:
        s = c.servers[0]
        for name, value in SECRETS.items():
            assert s.post("/v1/secrets", {"name": name, "value": value}).status == 201
        spec = example("backup")
        task = spec["groups"][0]["tasks"][0]
        task.update(image=IMAGE, pull="never")
        spec["groups"][0]["restart"] = {"attempts": 0, "interval": "1h", "mode": "fail"}
        assert s.post("/v1/jobs", spec).status == 201

        def finished() -> list[dict[str, Any]] | None:
            allocs = s.get("/v1/allocations?job=backup").body or []
            done = [a for a in allocs if a["status"] in ("complete", "failed")]
            return done or None

        done = wait_until(finished, 90, message="the backup allocation finished")
        assert [a["status"] for a in done] == ["complete"], done
    finally:
        c.stop()
