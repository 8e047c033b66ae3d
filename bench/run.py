"""`python -m bench.run [--only writes,reads,...] [--quick]`: run the benchmarks.

Runs `run()` of every `bench/bench_*.py` that exists (known ones first, in a
fixed order; `raw_pysyncobj` right after `writes`, whose run it completes),
prints one table (metric, value, target, pass/fail) on stdout and writes the
whole result, details included, to bench/results/<timestamp>.json and
bench/results/latest.json. A benchmark that fails is reported as an error row
and the others still run; the exit status is 1 if any failed (with --strict,
also if any missed its target).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import check, load_average, log

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
ORDER = ["writes", "raw_pysyncobj", "reads", "failover", "memory", "scheduler", "auth"]
ALIASES = {"writes": ["writes", "raw_pysyncobj"], "raw": ["raw_pysyncobj"]}


def available() -> list[str]:
    found = {p.stem[len("bench_") :] for p in BENCH_DIR.glob("bench_*.py")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def selected(only: str | None) -> list[str]:
    names = available()
    if not only:
        return names
    wanted: list[str] = []
    for name in (n.strip() for n in only.split(",") if n.strip()):
        for n in ALIASES.get(name, [name]):
            if n not in wanted:
                wanted.append(n)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(names)}")
    return [n for n in names if n in wanted]


def run_one(name: str, quick: bool) -> dict[str, Any]:
    module = importlib.import_module(f"bench.bench_{name}")
    fn = module.run
    params = inspect.signature(fn).parameters
    accepts_quick = "quick" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    result = fn(quick=quick) if accepts_quick else fn()
    if not isinstance(result, dict):
        raise TypeError(f"bench_{name}.run() returned {type(result).__name__}, not a dict")
    return result


def normalize(value: Any) -> dict[str, Any]:
    """A metric as {value, unit, target, pass}, whatever shape the module used."""
    if isinstance(value, dict) and "value" in value:
        m = {"unit": "", "target": None, **value}
        if m.get("pass") is None and "ok" in m and isinstance(m["ok"], bool):
            m["pass"] = m["ok"]
        if m.get("pass") is None:
            m["pass"] = check(m["value"], m["target"])
        return m
    return {"value": value, "unit": "", "target": None, "pass": None}


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    out = []
    for bench, res in results.items():
        if "error" in res:
            out.append((f"{bench}", "ERROR", "", "FAIL"))
            continue
        for name, raw in res["metrics"].items():
            m = normalize(raw)
            v = m["value"]
            if isinstance(v, dict | list | tuple):
                continue  # structured details: kept in the JSON, not tabulated
            if isinstance(v, float):
                v = f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
            elif isinstance(v, int) and not isinstance(v, bool):
                v = f"{v:,}"
            value = f"{v} {m['unit']}".strip()
            if len(value) > 40:
                value = value[:37] + "..."
            verdict = {True: "pass", False: "FAIL", None: "-"}[m["pass"]]
            out.append((f"{bench}.{name}", value, m["target"] or "-", verdict))
    return out


def table(results: dict[str, Any]) -> str:
    header = ("metric", "value", "target", "result")
    body = rows(results)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def metric_table(name: str, result: dict[str, Any]) -> str:
    """One module's `run()` result as the table `bench.run` prints (for a
    module run on its own: `python -m bench.bench_x`)."""
    metrics = {k: v for k, v in result.items() if not k.startswith("_")}
    return table({name: {"metrics": metrics}})


def git_commit() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=BENCH_DIR.parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _terminate(signum: int, _frame: Any) -> None:
    # Turn SIGTERM into an exception so every `finally` stops its servers.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated: " + ",".join(available()))
    parser.add_argument("--quick", action="store_true", help="small counts, for smoke testing")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    names = selected(args.only)
    signal.signal(signal.SIGTERM, _terminate)

    started = time.time()
    doc: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "quick": args.quick,
        "commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_start": load_average(),
        },
        "results": {},
    }
    results: dict[str, Any] = doc["results"]
    try:
        for name in names:
            log(f"=== {name} ===")
            t0 = time.monotonic()
            try:
                res = run_one(name, args.quick)
                metrics = {k: v for k, v in res.items() if not k.startswith("_")}
                extra = {k: v for k, v in res.items() if k.startswith("_")}
                results[name] = {"metrics": {k: normalize(v) for k, v in metrics.items()}, **extra}
            except Exception as e:  # noqa: BLE001 - one broken bench must not stop the rest
                log(f"{name} failed: {e!r}")
                results[name] = {"error": repr(e), "traceback": traceback.format_exc()}
            results[name]["seconds"] = round(time.monotonic() - t0, 1)
    except KeyboardInterrupt:
        log("interrupted; writing what was measured")
        doc["interrupted"] = True
    doc["duration_s"] = round(time.time() - started, 1)
    doc["machine"]["load_average_end"] = load_average()

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    text = json.dumps(doc, indent=2, default=str)
    (RESULTS / f"{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)

    print(table(results))
    if args.quick:
        print("(--quick: small counts; targets are indicative only)")
    print(f"results: {RESULTS / f'{stamp}.json'}")
    errors = any("error" in r for r in results.values())
    missed = any(
        normalize(m)["pass"] is False
        for r in results.values()
        for m in r.get("metrics", {}).values()
    )
    return 1 if errors or doc.get("interrupted") or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
