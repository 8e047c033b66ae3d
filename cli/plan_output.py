"""`heroctl job plan`'s text: the job diff (`+`, `-`, `~` lines) and the
scheduler's dry run, from the answer of `POST /v1/jobs/:name/plan`.

Pure (lists of lines), so it is unit-tested on its own. The layout follows
`nomad job plan`: the job, then each task group with what the plan does to
its allocations, then each changed task, each changed field as
`name: value` (added or deleted) or `name: old => new` (edited).
"""

from __future__ import annotations

import json
from typing import Any

from cli.placement import failure_text

SYMBOLS = {"added": "+", "deleted": "-", "edited": "~", "none": " "}
# The plan's per-group counts, in Nomad's words.
COUNT_WORDS = (
    ("place", "create"),
    ("stop", "destroy"),
    ("destructive_update", "create/destroy update"),
    ("in_place_update", "in-place update"),
    ("migrate", "migrate"),
    ("ignore", "ignore"),
    ("unplaced", "not placeable"),
)


def value_text(value: Any) -> str:
    """A field's value as it reads in a job file: strings quoted, lists in brackets."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def field_line(field: dict[str, Any], indent: int) -> str:
    symbol = SYMBOLS.get(field.get("type", ""), "?")
    if field.get("type") == "added":
        text = value_text(field.get("new"))
    elif field.get("type") == "deleted":
        text = value_text(field.get("old"))
    else:
        text = f"{value_text(field.get('old'))} => {value_text(field.get('new'))}"
    return f"{' ' * indent}{symbol} {field.get('name')}: {text}"


def counts_text(counts: dict[str, int] | None) -> str:
    """`1 create, 3 in-place update` (and how many replacements wait their turn)."""
    counts = counts or {}
    parts = [f"{counts[key]} {words}" for key, words in COUNT_WORDS if counts.get(key)]
    if counts.get("deferred"):
        parts.append(f"{counts['deferred']} of them later, update.max_parallel at a time")
    return ", ".join(parts)


def diff_lines(plan: dict[str, Any]) -> list[str]:
    diff = plan.get("diff") or {}
    lines = [f"{SYMBOLS.get(diff.get('type', ''), '?')} Job: {value_text(plan.get('job'))}"]
    lines += [field_line(f, 2) for f in diff.get("fields") or ()]
    groups = plan.get("groups") or {}
    for group in diff.get("groups") or ():
        annotation = counts_text(groups.get(group.get("name")))
        header = f"{SYMBOLS.get(group.get('type', ''), '?')} Task Group: "
        header += value_text(group.get("name"))
        lines.append(header + (f" ({annotation})" if annotation else ""))
        lines += [field_line(f, 4) for f in group.get("fields") or ()]
        for task in group.get("tasks") or ():
            if task.get("type") == "none":
                continue
            forces = " (forces create/destroy update)" if task.get("type") == "edited" else ""
            lines.append(
                f"    {SYMBOLS.get(task.get('type', ''), '?')} Task: "
                f"{value_text(task.get('name'))}{forces}"
            )
            lines += [field_line(f, 6) for f in task.get("fields") or ()]
    return lines


def dry_run_lines(plan: dict[str, Any]) -> list[str]:
    """What the scheduler would do: placed or not (why), a halted update."""
    lines = ["Scheduler dry-run:"]
    failures = plan.get("failures") or []
    if failures:
        lines.append("- WARNING: some allocations cannot be placed.")
        lines += [f"  {failure_text([failure], {})}" for failure in failures]
    else:
        lines.append("- All allocations can be placed.")
    for group, reason in sorted((plan.get("halted") or {}).items()):
        lines.append(f"- The rolling update of group '{group}' is halted: {reason}")
    if not plan.get("changes"):
        lines.append("- Submitting it would create or destroy no allocation.")
    return lines


def check_index_lines(plan: dict[str, Any], source: str) -> list[str]:
    index = plan.get("job_modify_index", 0)
    return [
        f"Job Modify Index: {index}",
        "To submit the job only if nobody changed it since this plan, run:",
        "",
        f"heroctl job run --check-index {index} {source}",
    ]


def plan_text(plan: dict[str, Any], source: str) -> str:
    return "\n".join(
        [*diff_lines(plan), "", *dry_run_lines(plan), "", *check_index_lines(plan, source)]
    )
