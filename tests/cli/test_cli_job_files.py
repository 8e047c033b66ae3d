"""`heroctl job init` (a commented example, never over a file without
--force) and `heroctl job validate FILE` (the job spec's schema and rules
here, then the server's dry run), against a real heroctld."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from domain.jobspec import normalize_job
from domain.jobspec.schema import job_schema
from tests.api.authutil import make_token, put_policy
from tests.support.cluster import Server, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Heroctl = Callable[..., Result]


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_init_writes_a_commented_example_that_is_a_valid_job(
    heroctl: Heroctl, tmp_path: Path
) -> None:
    target = tmp_path / "example.job.yaml"
    r = heroctl("job", "init", str(target))
    assert r.exit_code == 0, r.output
    text = target.read_text()
    assert text.startswith("# A HeroCtl job.") and "# The job's name" in text
    assert yaml.safe_load(text) == job_schema()["examples"][0]
    normalize_job(yaml.safe_load(text))
    r = heroctl("job", "validate", "--local", str(target))
    assert r.exit_code == 0 and "is valid" in r.output, r.output


def test_init_leaves_an_existing_file_alone_unless_forced(heroctl: Heroctl, tmp_path: Path) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text("name: mine\n")
    r = heroctl("job", "init", str(target))
    assert r.exit_code == 1 and "exists: pass --force" in r.output, r.output
    assert target.read_text() == "name: mine\n"
    assert heroctl("job", "init", "--force", str(target)).exit_code == 0
    assert yaml.safe_load(target.read_text()) == job_schema()["examples"][0]


def test_init_defaults_to_example_job_yaml_in_the_current_directory(
    heroctl: Heroctl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert heroctl("job", "init").exit_code == 0
    assert (tmp_path / "example.job.yaml").is_file()


def test_validate_names_every_field_the_schema_refuses(heroctl: Heroctl, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: web\ncount: 2\nupdate: {strategy: rainbow, canary: 1}\nresources: {cpu: 0}\n",
    )
    r = heroctl("job", "validate", "--local", path)
    assert r.exit_code == 1
    assert r.output.splitlines() == [
        f"{path}: not a valid job (3 errors):",
        "  image: is required for the docker driver",
        "  resources.cpu: must be >= 1, got 0",
        "  update.canary: only applies to the strategies canary, blue-green",
    ]


def test_validate_also_checks_the_rules_the_schema_cannot_say(
    heroctl: Heroctl, tmp_path: Path
) -> None:
    path = write(tmp_path, "name: web\nimage: x\nports: [{name: p}]\ncheck: {type: tcp, port: q}\n")
    r = heroctl("--json", "job", "validate", "--local", path)
    assert r.exit_code == 1
    assert json.loads(r.output) == {
        "file": path,
        "valid": False,
        "errors": [
            {
                "path": "check.port",
                "message": "names no port of this task ('q'; ports: p)",
                "source": "validator",
            }
        ],
    }


def test_validate_refuses_a_file_that_is_no_job(heroctl: Heroctl, tmp_path: Path) -> None:
    r = heroctl("job", "validate", "--local", write(tmp_path, "- a list\n"))
    assert r.exit_code == 1 and "must contain one job" in r.output


@pytest.mark.parametrize("name", ["web", "worker", "backup"])
def test_validate_takes_the_examples_with_the_server(heroctl: Heroctl, name: str) -> None:
    path = str(EXAMPLES / f"{name}.job.yaml")
    r = heroctl("job", "validate", path)
    assert r.exit_code == 0, r.output
    assert f"job '{name}' is valid (the job spec and the server at http" in r.output


def test_validate_says_what_the_server_refuses(
    heroctl: Heroctl, server: Server, tmp_path: Path
) -> None:
    """A valid spec this token may not submit (a privileged container): the
    server's dry run says so, and nothing is written."""
    put_policy(server, "deployer", {"jobs": "write"})
    token = make_token(server, ["deployer"])["secret_id"]
    path = write(tmp_path, "name: root-web\nimage: busybox:1\nprivileged: true\n")
    r = heroctl("job", "validate", path, "--token", token)
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"{path}: not a valid job (1 error):"
    assert lines[1].startswith("  this token may not submit this job: ")
    assert lines[1].endswith(" (server)") and "privileged" in lines[1]
    assert server.get("/v1/jobs/root-web").status == 404


def test_validate_fails_when_the_server_cannot_be_asked(heroctl: Heroctl) -> None:
    path = str(EXAMPLES / "web.job.yaml")
    r = heroctl("job", "validate", path, address=f"http://127.0.0.1:{free_port()}")
    assert r.exit_code == 1
    assert "could not reach the HeroCtl API" in r.output
