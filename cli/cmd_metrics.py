"""`heroctl metrics [--job NAME | --node NAME | --alloc ID] [--from -1h]`.

Without a scope: the cluster snapshot (nodes, jobs, allocations by status,
raft, API rate). With one: cpu and memory (and disk for a node) over the
window as small terminal charts, from the history the agents keep (24 h at
their sample interval, 1-minute steps for 7 days, hourly for 30).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.completion import complete_allocations, complete_jobs, complete_nodes
from cli.output import NONE, echo, heading, key_values, print_json, table, used_of
from client import ApiClient

BLOCKS = " ▁▂▃▄▅▆▇█"
LABELS = {
    "cpu": "cpu",
    "memory": "memory",
    "disk": "disk",
}


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return NONE
    text = f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text}%" if unit == "percent" else f"{text} {unit}".rstrip()


def chart(
    points: list[list[float]],
    *,
    start: float,
    end: float,
    width: int = 60,
    height: int = 6,
    unit: str = "",
) -> list[str]:
    """Points `[[t, v], ...]` as `height` rows of bars, one column per
    `(end - start) / width` seconds (the average of its points), scaled
    from 0 to the highest column; a y label on the first and last rows and
    the window's start and end times below."""
    if not points:
        return ["(no samples in this window)"]
    width = max(8, width)
    height = max(1, height)
    span = max(end - start, 1e-9)
    columns: list[list[float]] = [[] for _ in range(width)]
    for t, v in points:
        i = int((t - start) / span * width)
        if 0 <= i <= width:
            columns[min(i, width - 1)].append(float(v))
    values = [sum(c) / len(c) if c else None for c in columns]
    present = [v for v in values if v is not None]
    if not present:
        return ["(no samples in this window)"]
    top = max(present)
    if top <= 0:
        top = 1.0
    top_label, zero_label = fmt_value(top, unit), fmt_value(0.0, unit)
    pad = max(len(top_label), len(zero_label))
    rows = []
    for r in range(height - 1, -1, -1):
        cells = []
        for v in values:
            if v is None:
                cells.append(" ")
                continue
            level = round(max(0.0, v) / top * height * 8) - r * 8
            if r == 0 and level <= 0:
                level = 1  # a baseline: a sample of 0 still shows
            cells.append(BLOCKS[max(0, min(8, level))])
        label = top_label if r == height - 1 else zero_label if r == 0 else ""
        rows.append(f"{label:>{pad}} ┤{''.join(cells)}")
    rows.append(" " * pad + " └" + "─" * width)
    left = datetime.fromtimestamp(start).strftime("%H:%M")
    right = datetime.fromtimestamp(end).strftime("%H:%M")
    rows.append(" " * (pad + 2) + left + right.rjust(max(len(right) + 1, width - len(left))))
    return rows


def _series_points(answer: dict[str, Any]) -> list[list[float]]:
    """The series to draw: the total for a job or all nodes, else the only one."""
    if "total" in answer and (answer.get("scope") == "job" or len(answer["series"]) > 1):
        return answer["total"]["points"]
    series = answer.get("series") or []
    return series[0]["points"] if series else []


def _last(points: list[list[float]]) -> float | None:
    return points[-1][1] if points else None


def describe_unit(metric: str, unit: str, scope: str) -> str:
    if metric == "cpu":
        return "% of all cores" if scope == "node" else "% of one core"
    return unit


def print_charts(
    answers: dict[str, dict[str, Any]], title: str, *, width: int, height: int
) -> None:
    for metric, answer in answers.items():
        points = _series_points(answer)
        unit = answer.get("unit", "")
        peak = max((v for _, v in points), default=None)
        step = answer.get("step")
        echo(
            f"{title} {LABELS.get(metric, metric)} ({describe_unit(metric, unit, answer['scope'])}"
            f"), step {step:g}s: now {fmt_value(_last(points), unit)}, "
            f"max {fmt_value(peak, unit)}"
        )
        for line in chart(
            points,
            start=float(answer["from"]),
            end=float(answer["to"]),
            width=width,
            height=height,
            unit=unit,
        ):
            echo(line)
        for err in answer.get("errors") or []:
            click.echo(f"warning: node {err['node']}: {err['message']}", err=True)
        echo("")


def print_snapshot(snap: dict[str, Any]) -> None:
    raft = snap["raft"]
    key_values(
        [
            ("Leader", raft.get("leader")),
            ("Raft index", raft.get("index")),
            ("Raft term", raft.get("term")),
            ("API requests/s", snap["api"].get("requests_per_second")),
            (
                "Allocations",
                ", ".join(f"{n} {s}" for s, n in snap["allocations"].items() if n) or "none",
            ),
        ]
    )
    heading("Nodes")
    rows = []
    for n in snap["nodes"]:
        cpu, mem, disk = n["cpu"], n["memory"], n["disk"]
        rows.append(
            (
                n["name"],
                n["status"],
                fmt_value(cpu.get("used_percent"), "percent"),
                used_of(cpu.get("used_mhz"), cpu.get("total_mhz"), "MHz"),
                used_of(mem.get("used_mb"), mem.get("host_total_mb") or mem.get("total_mb"), "MB"),
                used_of(disk.get("used_mb"), disk.get("total_mb"), "MB"),
                n["allocations"],
                n.get("sampled_at"),
            )
        )
    table(["NAME", "STATUS", "CPU", "CPU MHZ", "MEMORY", "DISK", "ALLOCS", "SAMPLED"], rows)
    if snap["jobs"]:
        heading("Jobs")
        table(
            ["JOB", "RUNNING", "ALLOCATIONS", "CPU (% OF A CORE)", "MEMORY MB"],
            [
                (j["name"], j["running"], j["allocations"], j["cpu_percent"], j["memory_mb"])
                for j in snap["jobs"]
            ],
        )
    if snap.get("ingress"):
        heading("Ingress")
        table(
            ["HOST", "REQUESTS", "REQ/S", "2XX", "4XX", "5XX", "P50 MS", "P99 MS", "SENT"],
            [
                (
                    host,
                    h.get("requests"),
                    h.get("requests_per_second"),
                    (h.get("responses") or {}).get("2xx"),
                    (h.get("responses") or {}).get("4xx"),
                    (h.get("responses") or {}).get("5xx"),
                    h.get("upstream_p50_ms"),
                    h.get("upstream_p99_ms"),
                    h.get("bytes_sent"),
                )
                for host, h in sorted(snap["ingress"].items())
            ],
        )
    for name in snap.get("unreachable_servers") or []:
        click.echo(f"warning: server {name} did not answer", err=True)
    for name in snap.get("unreachable_nodes") or []:
        click.echo(f"warning: node {name} (its agent API) did not answer", err=True)


def _alloc_table(answers: dict[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows: dict[str, list[Any]] = {}
    for metric in ("cpu", "memory"):
        for s in (answers.get(metric) or {}).get("series") or []:
            if not s.get("alloc"):
                continue
            row = rows.setdefault(s["alloc"], [s["alloc"][:8], s.get("node"), None, None])
            row[2 if metric == "cpu" else 3] = _last(s["points"])
    return [tuple(r) for r in rows.values()]


@click.command("metrics")
@click.option(
    "--job",
    metavar="NAME",
    shell_complete=complete_jobs,
    help="cpu and memory of a job (all its allocations).",
)
@click.option(
    "--node", metavar="NAME", shell_complete=complete_nodes, help="cpu, memory and disk of a node."
)
@click.option(
    "--alloc",
    metavar="ID",
    shell_complete=complete_allocations,
    help="cpu and memory of one allocation.",
)
@click.option(
    "--from", "start", default="-1h", show_default=True, help="Start: -1h, -30m, RFC 3339."
)
@click.option("--to", "end", default="now", show_default=True, help="End: now, -5m, RFC 3339.")
@click.option("--step", default=None, help="Width of a point (30s, 5m); default: automatic.")
@click.option("--width", type=int, default=60, show_default=True, help="Chart columns.")
@click.option("--height", type=int, default=6, show_default=True, help="Chart rows.")
@api_options
@pass_settings
def metrics(
    settings: Settings,
    job: str | None,
    node: str | None,
    alloc: str | None,
    start: str,
    end: str,
    step: str | None,
    width: int,
    height: int,
) -> None:
    """Show the cluster's metrics, or the history of a job, node or allocation."""
    scopes = [x for x in (job, node, alloc) if x is not None]
    if len(scopes) > 1:
        raise click.UsageError("give at most one of --job, --node and --alloc")
    if not scopes:
        snap = call(settings, lambda api: api.metrics())
        if settings.json_output:
            print_json(snap)
        else:
            print_snapshot(snap)
        return
    names = ["cpu", "memory", "disk"] if node is not None else ["cpu", "memory"]

    async def fetch(api: ApiClient) -> dict[str, dict[str, Any]]:
        answers = await asyncio.gather(
            *(
                api.metrics_query(
                    m, job=job, node=node, alloc=alloc, start=start, end=end, step=step
                )
                for m in names
            )
        )
        return dict(zip(names, answers, strict=True))

    answers = call(settings, fetch)
    if settings.json_output:
        print_json(answers)
        return
    title = f"job {job}" if job else f"node {node}" if node else f"allocation {alloc}"
    print_charts(answers, title.capitalize() + ":", width=width, height=height)
    if job is not None:
        rows = _alloc_table(answers)
        if rows:
            show_rows = [
                (r[0], r[1], fmt_value(r[2], "percent"), fmt_value(r[3], "MB")) for r in rows
            ]
            table(["ALLOC", "NODE", "CPU (LAST)", "MEMORY (LAST)"], show_rows)
