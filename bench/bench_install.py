"""From `deploy/install.sh` on three servers to a bootstrapped cluster answering.

Three "machines" on loopback, each a staging root (`install.sh --root DIR`):
the first server's install makes the cluster key, the other two take it from
the first's `/etc/heroctl/heroctl.env` (as an operator copies it). Each root's
`usr/local/bin/heroctld` then starts with the `heroctld.toml` the installer
wrote and the key from its environment file (what its systemd unit would do),
and the clock stops once `heroctl acl bootstrap` (run as the README says, with
the address and CA the installer printed) has given a token and an
authenticated `GET /v1/jobs` answers 200 on every server.

Phases: the three installs (`--venv` reuses this checkout's environment: a real
machine also builds one, ≈11 s offline, `tests/deploy/test_install.py`), the
start until every server knows a leader, the bootstrap, the first answer.
The servers run without agents (`--no-agent`): no Docker, no ingress ports.
The vendor promises a 3-node cluster in under 10 minutes; the target here is
the whole path in under a minute on loopback.

`python -m bench.bench_install` runs it alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import load_average, log, metric
from tests.support.cluster import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "deploy" / "install.sh"
VENV = Path(sys.prefix)  # this checkout's environment (its heroctld and heroctl)


def _install(root: Path, args: list[str]) -> str:
    done = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--venv", str(VENV), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"install.sh failed: {done.stderr.strip()}")
    return done.stdout


def _environment(root: Path) -> dict[str, str]:
    """The unit's EnvironmentFile: KEY=VALUE lines (the cluster key)."""
    env = {}
    for line in (root / "etc/heroctl/heroctl.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            env[key.strip()] = value.strip().strip('"')
    return env


def _get(url: str, ca: Path, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@contextlib.contextmanager
def _servers(roots: list[Path], data: list[Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    try:
        for root, data_dir in zip(roots, data, strict=True):
            env = {**os.environ, **_environment(root)}
            heroctld = root / "usr/local/bin/heroctld"
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(data_dir.parent / f"{root.name}.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [str(heroctld), "--config", str(root / "etc/heroctl/heroctld.toml")],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def run(quick: bool = False) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="heroctl-bench-install-"))
    try:
        return _run(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(base: Path) -> dict[str, Any]:
    load_before = load_average()
    ports = [(free_port(), free_port()) for _ in range(3)]
    peers = ",".join(f"127.0.0.1:{raft}" for _, raft in ports)
    roots = [base / f"server-{i + 1}" for i in range(3)]
    data = [base / "data" / f"server-{i + 1}" for i in range(3)]
    began = time.monotonic()
    for i, (root, (api, raft)) in enumerate(zip(roots, ports, strict=True)):
        args = ["--server", "--bind", "127.0.0.1", "--peers", peers, "--no-agent"]
        args += ["--api-port", str(api), "--raft-port", str(raft)]
        args += ["--node-name", f"server-{i + 1}", "--data-dir", str(data[i])]
        if i > 0:  # the first one's key, as an operator copies it
            args += ["--cluster-key-file", str(roots[0] / "etc/heroctl/heroctl.env")]
        _install(root, args)
    installed = time.monotonic()
    log(f"install: three servers staged in {installed - began:.2f} s")
    urls = [f"https://127.0.0.1:{api}" for api, _ in ports]
    with _servers(roots, data):
        ca = data[0] / "tls" / "ca.pem"
        wait_until(lambda: ca.exists(), 60, 0.05, "the cluster CA")
        for url in urls:
            wait_until(
                lambda url=url: _get(f"{url}/v1/health/ready", ca) == 200,
                60,
                0.05,
                f"{url} ready (it knows a leader)",
            )
        led = time.monotonic()
        env = {**os.environ, "HEROCTL_ADDR": urls[0], "HEROCTL_CACERT": str(ca)}
        env["HOME"] = str(base)  # no saved credentials of the machine's user
        bootstrap = subprocess.run(
            [str(roots[0] / "usr/local/bin/heroctl"), "--json", "acl", "bootstrap"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if bootstrap.returncode != 0:
            raise RuntimeError(f"heroctl acl bootstrap failed: {bootstrap.stderr.strip()}")
        answer = json.loads(bootstrap.stdout)
        token = answer["secret_id"]
        bootstrapped = time.monotonic()
        for url in urls:
            wait_until(
                lambda url=url: _get(f"{url}/v1/jobs", ca, token) == 200,
                30,
                0.05,
                f"{url} answering an authenticated read",
            )
        answered = time.monotonic()
    total = answered - began
    log(
        f"install: installs {installed - began:.2f} s, start to leader {led - installed:.2f} s, "
        f"bootstrap {bootstrapped - led:.2f} s, first answers {answered - bootstrapped:.2f} s: "
        f"{total:.2f} s in all"
    )
    return {
        "install_to_bootstrapped_s": metric(round(total, 2), "s", "<= 60"),
        "install_three_servers_s": metric(round(installed - began, 2), "s"),
        "install_start_to_leader_s": metric(round(led - installed, 2), "s"),
        "install_bootstrap_s": metric(round(bootstrapped - led, 2), "s"),
        "install_first_answer_s": metric(round(answered - bootstrapped, 2), "s"),
        "install_load_average_1m": metric(load_before[0]),
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
