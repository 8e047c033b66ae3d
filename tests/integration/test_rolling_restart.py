"""Upgrades without downtime (issue 14 part 9): each of three servers is
restarted in turn, as an upgrade does, under a steady client load that knows
all three addresses: the client library (job submits and reads from a few
tasks) and the CLI (`heroctl job status` in a loop, with `HEROCTL_ADDR` set
to the three servers). Not one request may fail, and every acknowledged
submit is on every server at the end."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from client import DEFAULT_RETRY, ApiClient, ApiClientError
from tests.support import tls
from tests.support.cluster import Cluster, Server, wait_until

REPO = Path(__file__).resolve().parents[2]
WRITERS = 2
READERS = 2
PAUSE = 0.05  # seconds between one task's requests: a steady load, far under the rate limits


@dataclass
class Load:
    """What the load did, when: (monotonic time, what) per success and per failure."""

    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: list[tuple[float, str]] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        with self.lock:
            self.done.append((time.monotonic(), what))

    def fail(self, what: str, error: object) -> None:
        with self.lock:
            self.failed.append((time.monotonic(), f"{what}: {error}"))

    def between(self, start: float, end: float, kind: str) -> int:
        with self.lock:
            return sum(1 for t, what in self.done if start <= t <= end and what == kind)


def wait_rejoined(cluster: Cluster, server: Server, timeout: float = 60.0) -> None:
    """Until a restarted ``server`` serves, knows a leader and applied everything
    committed, and the leader reaches every live member again (so the next
    server may be stopped without losing the majority). A timeout says what
    every server logged last."""

    def everyone_reached() -> bool:
        st = cluster.leader(timeout=2).status()
        return bool(st) and st["reachable_members"] == st["members"] == len(cluster.live())

    try:
        cluster.wait_ready([server], timeout)
        wait_until(everyone_reached, timeout, message=f"{server.name} rejoined")
    except TimeoutError as e:
        tails = "\n".join(
            f"--- {s.name} ({'up' if s.alive else 'down'}):\n"
            + "\n".join(s.log().splitlines()[-30:])
            for s in cluster.servers
        )
        raise TimeoutError(f"{e}\n{tails}") from None


def rotated(urls: list[str], k: int) -> str:
    """The three addresses, starting at a different one per task (the load is spread)."""
    return ",".join(urls[k % len(urls) :] + urls[: k % len(urls)])


async def library_load(load: Load, urls: list[str], token: str) -> None:
    async def writer(w: int) -> None:
        async with ApiClient(
            rotated(urls, w), token, ca_file=str(tls.bundle()), retry=DEFAULT_RETRY
        ) as api:
            i = 0
            while not load.stop.is_set():
                name = f"roll-{w}-{i}"
                try:
                    await api.submit_job({"name": name, "meta": {"writer": str(w)}})
                except ApiClientError as e:
                    load.fail(f"submit {name}", e)
                else:
                    load.ok("submit")
                    with load.lock:
                        load.submitted.append(name)
                i += 1
                await asyncio.sleep(PAUSE)

    async def reader(r: int) -> None:
        async with ApiClient(
            rotated(urls, r + 1), token, ca_file=str(tls.bundle()), retry=DEFAULT_RETRY
        ) as api:
            while not load.stop.is_set():
                try:
                    jobs = await api.list_jobs()
                    with load.lock:
                        known = load.submitted[-1] if load.submitted else None
                    if known is not None:  # acknowledged before this read began
                        assert (await api.get_job(known))["name"] == known
                except (ApiClientError, AssertionError) as e:
                    load.fail("read", e)
                else:
                    load.ok("read")
                    del jobs
                await asyncio.sleep(PAUSE)

    await asyncio.gather(*(writer(w) for w in range(WRITERS)), *(reader(r) for r in range(READERS)))


def cli_load(load: Load, urls: list[str], token: str, home: Path) -> None:
    """`heroctl job status` in a loop, as a script on an operator's machine would."""
    env = {
        **os.environ,
        "HEROCTL_ADDR": ",".join(urls),
        "HEROCTL_TOKEN": token,
        "XDG_CONFIG_HOME": str(home),
    }
    while not load.stop.is_set():
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", "job", "status", "roll-0-0"],
            env=env,
            cwd=REPO,
            capture_output=True,
            timeout=120,
        )
        if out.returncode == 0 and b"roll-0-0" in out.stdout:
            load.ok("cli")
        else:
            load.fail("heroctl job status", out.stderr.decode(errors="replace").strip())


def test_restarting_each_server_in_turn_fails_no_request(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    load = Load()
    threads: list[threading.Thread] = []
    try:
        cluster.start()
        wait_rejoined(cluster, cluster.servers[0])  # the leader reaches both others
        urls = [s.url for s in cluster.servers]
        token = cluster.token or ""
        home = tmp_path / "home"
        threads = [
            threading.Thread(target=asyncio.run, args=(library_load(load, urls, token),)),
            threading.Thread(target=cli_load, args=(load, urls, token, home)),
        ]
        for t in threads:
            t.start()
        wait_until(lambda: load.between(0, time.monotonic(), "cli") >= 1, 60, message="load")

        leaders_restarted = 0
        for server in cluster.servers:
            leaders_restarted += bool((server.status() or {}).get("is_leader"))
            down = time.monotonic()
            server.stop()
            stopped = time.monotonic()
            server.start(peers=cluster.peers)
            wait_rejoined(cluster, server)
            back = time.monotonic()
            # The load went on while this server was down and while it came back.
            for kind in ("submit", "read"):
                assert load.between(down, back, kind) > 0, (server.name, kind)
            assert stopped - down < 15, f"{server.name} took {stopped - down:.1f}s to stop"
        # One more CLI call after the last restart, then the load stops.
        last = time.monotonic()
        wait_until(lambda: load.between(last, time.monotonic(), "cli") >= 1, 60, message="cli")
        load.stop.set()
        for t in threads:
            t.join(120)

        assert not load.failed, f"{len(load.failed)} failed requests: {load.failed[:5]}"
        assert leaders_restarted >= 1  # the leader's turn came too
        assert load.between(0, time.monotonic(), "submit") > 50
        submitted = set(load.submitted)
        for s in cluster.servers:
            names = {j["name"] for j in s.get("/v1/jobs").body}
            assert submitted <= names, f"{len(submitted - names)} submits lost on {s.name}"
    finally:
        load.stop.set()
        for t in threads:
            t.join(120)
        cluster.stop()
