"""`heroctl job validate FILE` and `heroctl job init`: job files before they
are submitted, checked against the job spec's JSON Schema
(domain/jobspec/schema.py) and the validator here, then by the server (a dry
run of the submit); a commented example to start from."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click

from cli.cmd_job import SpecError, load_spec
from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, print_json
from client import ApiClient, ApiClientError
from domain.jobspec import JobSpecError, normalize_job
from domain.jobspec.schema import job_schema
from domain.jobspec.schema_example import commented_example

__all__ = ["init", "validate"]

DEFAULT_INIT_FILE = "example.job.yaml"
# A server's answers that are about the spec (or this token's right to submit
# it), not about reaching the server.
SPEC_REFUSALS = (400, 403, 409, 413)


def local_errors(spec: dict[str, Any]) -> list[dict[str, str]]:
    """The schema's errors; when it has none, the validator's (what the
    schema cannot say: unique names, a check's port, growing deadlines...)."""
    from domain.jobspec.schema_check import schema_errors  # jsonschema: ~80 ms, only here

    found = [
        {"path": e.path, "message": e.message, "source": "schema"} for e in schema_errors(spec)
    ]
    if not found:
        try:
            normalize_job(spec)
        except JobSpecError as e:
            found.append({"path": e.path, "message": e.message, "source": "validator"})
    return found


def server_errors(settings: Settings, spec: dict[str, Any]) -> list[dict[str, str]]:
    """What the server says of submitting ``spec`` (a dry run: nothing is
    written): nothing, or its refusal."""

    async def ask(api: ApiClient) -> list[dict[str, str]]:
        try:
            await api.plan_job(spec)
        except ApiClientError as e:
            if e.status not in SPEC_REFUSALS:
                raise
            path, _, message = e.message.partition(": ")
            if not message or " " in path:
                path, message = "", e.message
            return [{"path": path, "message": message, "source": "server", "code": e.code}]
        return []

    return call(settings, ask)


@click.command("validate")
@click.argument("file", type=click.File("r"))
@click.option("--local", is_flag=True, help="Check the file here only; ask no server.")
@api_options
@pass_settings
def validate(settings: Settings, file: IO[str], local: bool) -> None:
    """Check a job file without submitting it.

    FILE is JSON or YAML (`-` reads stdin). It is checked against the job
    spec's JSON Schema and the validator's rules here, then (unless --local)
    by the server: the dry run of its submit (`POST /v1/jobs/NAME/plan`),
    which also says whether your token may submit it. Each error names its
    field (`groups[0].tasks[0].image: is required for the docker driver`).
    Exit status 0 when the file is a valid job, 1 when it is not (or the
    server cannot be asked).
    """
    source = "stdin" if file.name == "<stdin>" else file.name
    spec = load_spec(file.read(), source)
    errors = local_errors(spec)
    if not errors and not local:
        errors = server_errors(settings, spec)
    if settings.json_output:
        print_json({"file": source, "valid": not errors, "errors": errors})
    elif errors:
        echo(f"{source}: not a valid job ({len(errors)} error{'s' if len(errors) > 1 else ''}):")
        for e in errors:
            where = f"{e['path']}: " if e["path"] else ""
            echo(f"  {where}{e['message']}" + (" (server)" if e["source"] == "server" else ""))
    else:
        checked = "the job spec" if local else f"the job spec and the server at {settings.address}"
        echo(f"{source}: job '{spec.get('name')}' is valid ({checked}).")
    if errors:
        raise click.exceptions.Exit(1)


@click.command("init")
@click.argument("file", default=DEFAULT_INIT_FILE, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def init(file: str, force: bool) -> None:
    """Write a commented example job file to start from (default example.job.yaml).

    Each field of the example is followed by what it means; every other field
    is in docs/jobspec.md (and `GET /v1/jobs/schema`). An existing FILE is
    left alone unless --force.
    """
    text = commented_example(job_schema(), file)
    try:
        with Path(file).open("w" if force else "x") as out:
            out.write(text)
    except FileExistsError:
        raise SpecError(f"{file} exists: pass --force to overwrite it") from None
    except OSError as e:
        raise SpecError(f"cannot write {file}: {e.strerror}") from None
    echo(f"Wrote {file}: edit it, then `heroctl job validate {file}` and `heroctl job run {file}`.")
