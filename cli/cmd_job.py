"""`heroctl job ...`: submit, list, inspect and stop jobs."""

from __future__ import annotations

import json
import time
from typing import IO, Any

import click
import yaml

from cli.common import Settings, api_options, call, pass_settings
from cli.output import (
    changed_keys,
    echo,
    fmt_age,
    fmt_time,
    key_values,
    print_json,
    table,
)

# Fields the server sets on a job; everything else is the submitted spec.
SERVER_FIELDS = (
    "name",
    "type",
    "status",
    "version",
    "create_index",
    "modify_index",
    "job_modify_index",
    "submit_time",
)


@click.group()
def job() -> None:
    """Jobs: the declarative description of what should run."""


class SpecError(click.ClickException):
    pass


def load_spec(text: str, source: str) -> dict[str, Any]:
    """A job file's text (JSON or YAML) -> the JSON object to submit.

    JSON is tried first so a `.json` file gets JSON's error messages; YAML
    values JSON cannot carry (dates) become strings rather than failing later.
    """
    try:
        doc = json.loads(text)
    except ValueError as e:
        if source.endswith(".json"):
            raise SpecError(f"{source} is not valid JSON: {e}") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as ye:
            raise SpecError(f"{source} is neither valid JSON nor valid YAML: {ye}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{source} must contain one job: a JSON object / YAML mapping")
    return json.loads(json.dumps(doc, default=str))


@job.command("run")
@click.argument("file", type=click.File("r"))
@click.option(
    "--check-index",
    type=click.IntRange(min=0),
    metavar="N",
    help="Only submit if the job's job_modify_index is still N (0: must not exist).",
)
@api_options
@pass_settings
def run(settings: Settings, file: IO[str], check_index: int | None) -> None:
    """Create or update a job from a file.

    FILE is JSON or YAML (`-` reads stdin). Every submit makes a new version.
    """
    source = "stdin" if file.name == "<stdin>" else file.name
    spec = load_spec(file.read(), source)
    doc = call(settings, lambda api: api.submit_job(spec, job_modify_index=check_index))
    if settings.json_output:
        print_json(doc)
        return
    verb = "registered" if doc.get("version") == 0 else "updated"
    echo(
        f"Job '{doc.get('name')}' {verb}: version {doc.get('version')}, "
        f"job modify index {doc.get('job_modify_index')}."
    )


@job.command("list")
@api_options
@pass_settings
def list_(settings: Settings) -> None:
    """List jobs with their status and current version."""
    jobs = call(settings, lambda api: api.list_jobs())
    if settings.json_output:
        print_json(jobs)
        return
    if not jobs:
        echo("No jobs.")
        return
    now = time.time() * 1000
    table(
        ["NAME", "TYPE", "STATUS", "VERSION", "MODIFY INDEX", "SUBMITTED"],
        [
            (
                j.get("name"),
                j.get("type"),
                j.get("status"),
                j.get("version"),
                j.get("job_modify_index"),
                fmt_age(j.get("submit_time"), now),
            )
            for j in jobs
        ],
    )


def summary_rows(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Name", doc.get("name")),
        ("Type", doc.get("type")),
        ("Status", doc.get("status")),
        ("Version", doc.get("version")),
        ("Submitted", fmt_time(doc.get("submit_time"))),
        ("Job modify index", doc.get("job_modify_index")),
        ("Create index", doc.get("create_index")),
    ]


def version_rows(versions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Newest first, each with the spec fields changed since the version before it."""
    rows = []
    for i, v in enumerate(versions):
        previous = versions[i + 1] if i + 1 < len(versions) else None
        changes = changed_keys(previous, v, ignore=SERVER_FIELDS)
        rows.append(
            (
                v.get("version"),
                v.get("status"),
                v.get("job_modify_index"),
                fmt_time(v.get("submit_time")),
                ", ".join(changes) if changes else ("-" if previous is None else "(none)"),
            )
        )
    return rows


@job.command("status")
@click.argument("name")
@click.option("--versions", is_flag=True, help="Show the stored versions instead.")
@api_options
@pass_settings
def status(settings: Settings, name: str, versions: bool) -> None:
    """Show a job's summary and spec (or, with --versions, its history)."""
    if versions:
        history = call(settings, lambda api: api.job_versions(name))
        if settings.json_output:
            print_json(history)
            return
        table(["VERSION", "STATUS", "MODIFY INDEX", "SUBMITTED", "CHANGED"], version_rows(history))
        return
    doc = call(settings, lambda api: api.get_job(name))
    if settings.json_output:
        print_json(doc)
        return
    key_values(summary_rows(doc))
    spec = {k: v for k, v in doc.items() if k not in SERVER_FIELDS}
    if spec:
        echo("")
        echo("Spec:")
        echo(yaml.safe_dump(spec, sort_keys=False, default_flow_style=False).rstrip())


@job.command("stop")
@click.argument("name")
@api_options
@pass_settings
def stop(settings: Settings, name: str) -> None:
    """Stop a job and remove it with its history."""
    result = call(settings, lambda api: api.delete_job(name))
    if settings.json_output:
        print_json(result)
        return
    echo(f"Job '{name}' stopped and removed (index {result.get('index')}).")
