"""Tools of the ingress benchmark: probes, per-node polling, wrk, a hand-written
nginx, and the CPU and memory of process sets (nginx, containers).

Probes open a new connection per request (``Connection: close``): after a
reload an old nginx worker keeps serving the connections it holds with the
old configuration, so a kept-alive probe could report a route late. The
load itself (``run_wrk``) keeps connections alive, as browsers do.

``wrk`` (Debian's package, C, one epoll loop per thread) is the load
generator: a Python generator would take from the two cores the very CPU the
proxy needs, and ``bench.lean_http`` sends no Host header of its own. Its
CPU time comes from ``wait4`` (its rusage), so every path's CPU per request
counts the generator too.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.ingress.paths import Paths, worker_user
from agent.ingress.process import group_members
from bench.common import CLK_TCK, machine_cpu

WRK = "wrk"
UNKNOWN_HOST = 404  # the ingress's answer for a host no site declares


# --- probes -------------------------------------------------------------------------------
def http_get(port: int, host: str, path: str = "/", timeout: float = 2.0) -> tuple[int, bytes]:
    """One request on a new connection to 127.0.0.1:port with ``Host: host``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def status_or_zero(port: int, host: str) -> int:
    """The status of a GET (0: no answer)."""
    try:
        return http_get(port, host)[0]
    except (OSError, http.client.HTTPException):  # refused, reset, cut short
        return 0


def tls_verified(port: int, host: str, context: ssl.SSLContext, timeout: float = 2.0) -> bool:
    """Whether a TLS handshake with SNI ``host`` on 127.0.0.1:port verifies
    against ``context``'s roots (for that host name)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


def poll_nodes(
    ports: dict[str, int],
    served: Callable[[int], bool],
    t0: float,
    timeout: float,
    interval: float = 0.01,
) -> dict[str, float]:
    """Seconds after ``t0`` (monotonic) at which each node's ``served(port)``
    first held; every node is asked every ``interval`` until all have
    answered. TimeoutError naming the nodes still missing at the deadline."""
    first: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(first) < len(ports):
        for name, port in ports.items():
            if name not in first and served(port):
                first[name] = time.monotonic() - t0
        if len(first) == len(ports):
            break
        if time.monotonic() > deadline:
            missing = sorted(set(ports) - set(first))
            raise TimeoutError(f"after {timeout:g}s, not served by {missing}")
        time.sleep(interval)
    return first


# --- CPU and memory of process sets -------------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (utime + stime; with ``children``, also of its
    reaped children: busybox httpd forks one per connection)."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def cgroup_cpu(pid: int) -> float | None:
    """CPU seconds of the whole cgroup ``pid`` runs in (a container: its init,
    httpd and every child it forked), v1 ``cpuacct`` or v2 ``cpu.stat``."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpuacct" in controllers.split(","):
                usage = Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage").read_text()
                return int(usage) / 1e9
            if controllers == "" and Path(f"/sys/fs/cgroup{path}/cpu.stat").exists():
                text = Path(f"/sys/fs/cgroup{path}/cpu.stat").read_text()
                usec = re.search(r"usage_usec (\d+)", text)
                if usec:
                    return int(usec.group(1)) / 1e6
    return None


def nginx_pids(master: int) -> list[int]:
    """An nginx master and its workers (its process group)."""
    return sorted(set(group_members(master)) | {master})


def ingress_master(data_dir: Path) -> int:
    """The pid of a node's ingress nginx master (from its prefix's pid file)."""
    paths = Paths.in_prefix(data_dir / "agent" / "ingress")
    return int(paths.pid_file.read_text().strip())


def docker_proxy_pids(host_port: int) -> list[int]:
    """Docker's userland proxies publishing ``host_port`` (in every published path)."""
    found = []
    needle = f"-host-port\0{host_port}\0".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if b"docker-proxy" in cmdline and needle in cmdline:
                found.append(int(entry))
    return found


def time_wait_to(ip: str, port: int) -> int:
    """TIME_WAIT sockets of this network namespace towards ip:port (IPv4).

    Busybox httpd closes every connection, so docker-proxy opens one to the
    container per request and many end in TIME_WAIT for 60 s, each holding
    an ephemeral port for that destination. After ~25 s of continuous load
    docker-proxy's CPU per request grew up to 15x here (kernel time: its
    connect()s) and every path fell below 1,000 requests/s; load phases
    start only once these sockets have drained."""
    octets = ip.split(".")
    want = "".join(f"{int(o):02X}" for o in reversed(octets)) + f":{port:04X}"
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split(None, 4)
            if fields[3] == "06" and fields[2] == want:
                count += 1
    return count


def memory_kb(pids: list[int]) -> dict[str, int]:
    """Summed VmRSS and Pss (kB) of processes: RSS counts the pages nginx's
    workers share with their master once per process, PSS splits them."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return {"rss_kb": rss, "pss_kb": pss, "processes": len(pids)}


@dataclass
class CpuSet:
    """CPU seconds of named groups of processes and of the machine, between
    ``begin`` and ``end``. A sampler returns a group's cumulative seconds."""

    samplers: dict[str, Callable[[], float]]
    _start: dict[str, float] = field(default_factory=dict)
    _machine: tuple[float, float] = (0.0, 0.0)
    _t0: float = 0.0

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, sample in self.samplers.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                out[name] = sample()
        return out

    def begin(self) -> None:
        self._t0 = time.monotonic()
        self._start = self._sample()
        self._machine = machine_cpu()

    def end(self) -> dict[str, Any]:
        wall = time.monotonic() - self._t0
        now = self._sample()
        busy, total = machine_cpu()
        cores = os.cpu_count() or 1
        machine_s = (busy - self._machine[0]) / max(total - self._machine[1], 1.0) * wall * cores
        used = {n: now[n] - self._start[n] for n in now if n in self._start}
        return {"wall_s": wall, "cpu_s": used, "machine_cpu_s": machine_s}


def pids_cpu(pids: Callable[[], list[int]], children: bool = False) -> Callable[[], float]:
    """A sampler: the summed CPU of the processes ``pids()`` names now."""

    def sample() -> float:
        total = 0.0
        for pid in pids():
            with contextlib.suppress(OSError):
                total += process_cpu(pid, children)
        return total

    return sample


# --- wrk ----------------------------------------------------------------------------------
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests, rate, latency percentiles (ms) and errors from wrk's report."""
    out: dict[str, Any] = {}
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+),", text):
        out["requests"] = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["rate_per_s"] = float(m.group(1))
    for pct, value in re.findall(r"^\s+(\d+)%\s+([\d.]+[a-z]+)$", text, re.M):
        out[f"p{pct}_ms"] = round(_ms(value), 3)
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        out["socket_errors"] = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        out["non_2xx"] = int(m.group(1))
    return out


def run_wrk(
    url: str, host: str, seconds: float, connections: int, threads: int = 1
) -> dict[str, Any]:
    """One wrk run; its parsed report plus its own CPU seconds (rusage)."""
    if shutil.which(WRK) is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    argv += ["-H", f"Host: {host}", url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        text = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {text[-500:]}")
    out = parse_wrk(text)
    if "requests" not in out or "rate_per_s" not in out:
        raise RuntimeError(f"unreadable wrk report: {text[-500:]}")
    # Only 2xx answers count: an upstream taken out of rotation (a failed
    # health check under load) makes fast 503s, not throughput.
    failed = out.get("non_2xx", 0)
    out["ok_rate_per_s"] = round(
        out["rate_per_s"] * (out["requests"] - failed) / out["requests"], 1
    )
    for pct in (50, 75, 90, 99):
        out.setdefault(f"p{pct}_ms", float("nan"))
    if failed or any(out[f"p{p}_ms"] != out[f"p{p}_ms"] for p in (50, 99)):
        out["report"] = text[-1500:]
    out["wrk_cpu_s"] = usage.ru_utime + usage.ru_stime
    return out


# --- nginx configured by hand -------------------------------------------------------------
HAND_CONF = """\
{user}worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    access_log off;
    upstream app {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@contextlib.contextmanager
def hand_nginx(root: Path, upstream: str, workers: int) -> Iterator[tuple[int, int]]:
    """A minimal hand-written nginx in front of ``upstream``: yields (port,
    master pid); stopped (its whole group) when the block ends."""
    prefix = root / "hand-nginx"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    user = worker_user()
    conf = prefix / "nginx.conf"
    conf.write_text(
        HAND_CONF.format(
            user=f"user {user};\n" if user else "",
            workers=workers,
            prefix=prefix,
            upstream=upstream,
            port=port,
        )
    )
    os.chmod(prefix, 0o755)  # workers (nobody) read nothing here, but may stat it
    argv = ["nginx", "-p", f"{prefix}/", "-c", str(conf), "-g", "daemon off;"]
    proc = subprocess.Popen(argv, start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while status_or_zero(port, "hand.test") == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"hand-written nginx did not start: {err[-500:]}")
            time.sleep(0.02)
        yield port, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
