"""docs/jobspec.md is the job spec's JSON Schema rendered (domain/jobspec/schema_markdown.py):
regenerate it with `python -m domain.jobspec.schema --markdown > docs/jobspec.md`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from domain.jobspec.schema import job_schema
from domain.jobspec.schema_markdown import SECTIONS, render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "jobspec.md"


def test_the_checked_in_reference_is_the_rendered_schema() -> None:
    assert DOCS.read_text() == render(job_schema()), (
        "docs/jobspec.md is out of date: "
        "python -m domain.jobspec.schema --markdown > docs/jobspec.md"
    )


def test_the_module_prints_the_schema_and_the_reference() -> None:
    run = [sys.executable, "-m", "domain.jobspec.schema"]
    markdown = subprocess.run([*run, "--markdown"], cwd=ROOT, capture_output=True, text=True)
    assert markdown.returncode == 0 and markdown.stdout == DOCS.read_text()
    schema = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True)
    assert '"$schema": "https://json-schema.org/draft/2020-12/schema"' in schema.stdout


def test_every_object_of_the_schema_has_a_section_and_every_field_a_row() -> None:
    schema = job_schema()
    objects = {k for k, v in schema["$defs"].items() if v.get("properties")}
    assert objects == set(SECTIONS)
    text = DOCS.read_text()
    for name in ("job", *SECTIONS):
        obj = schema if name == "job" else schema["$defs"][name]
        assert f"## {obj['title']}\n" in text
        for key, prop in obj["properties"].items():
            if not prop.get("readOnly") and not ("$ref" in prop and len(prop) == 1):
                assert f"| `{key}` |" in text, (name, key)
