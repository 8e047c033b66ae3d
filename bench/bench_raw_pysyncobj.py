"""Raw pysyncobj on this machine: the ceiling under our API numbers.

A plain 3-node pysyncobj cluster, one process per node, configured like
raft/pysyncobj_glue.py (password, journal + dump, batching off, commandsWaitLeader off,
same timeouts and buffer sizes, own tick thread with doTick(0.01)) and one
replicated method taking a ~450-byte payload (the size of a job command).
Measured on the leader: async commits/s (many proposals in flight, callbacks)
and sequential sync latency; the sync latency also through a follower. Each is
measured with and without a journal flush after every tick that grew the
journal or the commit index, which is what raft/node.py does before it
acknowledges, so the flush cost is visible on its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
from typing import Any

from bench.common import CpuWatch, load_average, log, metric, percentile
from tests.support.cluster import free_port

PAYLOAD = os.urandom(450)


def _conf(data_dir: str, index: int) -> Any:
    from pysyncobj import SyncObjConf

    return SyncObjConf(
        password="bench-raw-pysyncobj",
        autoTick=False,
        journalFile=os.path.join(data_dir, f"n{index}.journal"),
        fullDumpFile=os.path.join(data_dir, f"n{index}.dump"),
        dynamicMembershipChange=True,
        appendEntriesUseBatch=False,
        commandsWaitLeader=False,
        raftMinTimeout=0.4,
        raftMaxTimeout=1.4,
        leaderFallbackTimeout=2.0,
        appendEntriesBatchSizeBytes=4 * 1024 * 1024,
        sendBufferSize=2**20,
        recvBufferSize=2**20,
        connectionRetryTime=1.0,
        connectionTimeout=3.0,
        logCompactionSplit=True,
        logCompactionMinEntries=5000,
        logCompactionMinTime=300.0,
    )


def _node_main(index: int, addrs: list[str], data_dir: str, conn: Any) -> None:
    """One raft node; the main thread serves the parent's commands."""
    from pysyncobj import SyncObj, replicated

    class Store(SyncObj):
        def __init__(self, addr: str, partners: list[str], conf: Any) -> None:
            super().__init__(addr, partners, conf)
            self.count = 0  # replicated state: created after SyncObj.__init__

        @replicated
        def put(self, data: bytes) -> int:
            self.count += 1
            return self.count

    box: list[Any] = []
    started = threading.Event()
    stopping = threading.Event()
    flush = threading.Event()

    def tick() -> None:  # constructs and ticks on one thread, as raft/node.py does
        obj = Store(addrs[index], [a for a in addrs if a != addrs[index]], _conf(data_dir, index))
        box.append(obj)
        started.set()
        journal = obj._SyncObj__raftLog  # type: ignore[attr-defined]
        flushed = (-1, -1)
        while not stopping.is_set():
            obj.doTick(0.01)
            if flush.is_set():
                mark = (len(journal), obj.raftCommitIndex)
                if mark != flushed:
                    journal.flush()
                    flushed = mark
        obj._doDestroy()

    thread = threading.Thread(target=tick, name="raft-tick", daemon=True)
    thread.start()
    started.wait(30)
    obj = box[0]
    try:
        while True:
            cmd, *args = conn.recv()
            if cmd == "stop":
                break
            if cmd == "status":
                leader = obj._getLeader()
                conn.send((obj._isLeader(), leader.id if leader else None))
            elif cmd == "flush":
                (flush.set if args[0] else flush.clear)()
                conn.send(True)
            elif cmd == "async":
                conn.send(_async_commits(obj, *args))
            elif cmd == "sync":
                conn.send(_sync_latencies(obj, *args))
    finally:
        stopping.set()
        thread.join(5)


def _async_commits(obj: Any, duration: float, window: int) -> dict[str, Any]:
    sem = threading.Semaphore(window)
    counts = {"ok": 0, "err": 0}
    end = time.monotonic() + duration
    start = time.monotonic()

    def done(_res: Any, err: int) -> None:  # tick thread
        if err == 0:
            if time.monotonic() <= end:
                counts["ok"] += 1
        else:
            counts["err"] += 1
        sem.release()

    while time.monotonic() < end:
        if sem.acquire(timeout=0.5):
            obj.put(PAYLOAD, callback=done)
    for _ in range(window):  # drain
        if not sem.acquire(timeout=5):
            break
    return {"ok": counts["ok"], "errors": counts["err"], "rate": counts["ok"] / (end - start)}


def _sync_latencies(obj: Any, count: int, max_duration: float) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    deadline = time.monotonic() + max_duration
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t0 = time.monotonic()
        try:
            obj.put(PAYLOAD, sync=True, timeout=5)
        except Exception:  # noqa: BLE001 - counted
            errors += 1
            continue
        lat.append((time.monotonic() - t0) * 1000.0)
    return {"lat": lat, "errors": errors}


class _RawCluster:
    def __init__(self, size: int = 3) -> None:
        self.dir = tempfile.mkdtemp(prefix="heroctl-bench-raw-")
        self.addrs = [f"127.0.0.1:{free_port()}" for _ in range(size)]
        ctx = mp.get_context("spawn")
        self.conns = []
        self.procs = []
        for i in range(size):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_node_main,
                args=(i, self.addrs, self.dir, child),
                daemon=True,
                name=f"bench-raw-{i}",
            )
            self.conns.append(parent)
            self.procs.append(p)

    def start(self) -> None:
        for p in self.procs:
            p.start()

    def ask(self, i: int, *cmd: Any, timeout: float = 120.0) -> Any:
        self.conns[i].send(cmd)
        if not self.conns[i].poll(timeout):
            raise TimeoutError(f"raw node {i} did not answer {cmd[0]}")
        return self.conns[i].recv()

    def wait_leader(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = [self.ask(i, "status", timeout=10) for i in range(len(self.procs))]
            leaders = {s[1] for s in statuses}
            if len(leaders) == 1 and None not in leaders:
                return next(i for i, s in enumerate(statuses) if s[0])
            time.sleep(0.1)
        raise TimeoutError("raw pysyncobj cluster elected no leader")

    def stop(self) -> None:
        for c in self.conns:
            with contextlib.suppress(Exception):
                c.send(("stop",))
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def run(quick: bool = False) -> dict[str, Any]:
    duration = 2.0 if quick else 5.0
    seq = 200 if quick else 2000
    out: dict[str, Any] = {}
    details: dict[str, Any] = {"load_average_before": load_average(), "payload_bytes": len(PAYLOAD)}
    cluster = _RawCluster(3)
    try:
        log("raw pysyncobj: starting 3 nodes")
        cluster.start()
        leader = cluster.wait_leader()
        follower = (leader + 1) % 3
        pids = {f"node-{i}": p.pid for i, p in enumerate(cluster.procs) if p.pid}
        cluster.ask(leader, "sync", 50, 30.0)  # warm-up
        for flush in (False, True):
            tag = "flush" if flush else "noflush"
            for i in range(3):
                cluster.ask(i, "flush", flush)
            log(f"raw pysyncobj ({tag}): async commits for {duration:g}s")
            watch = CpuWatch(pids)
            watch.begin()
            res = cluster.ask(leader, "async", duration, 2000)
            details[f"async_{tag}"] = {**res, "cpu": watch.end()}
            log(f"raw pysyncobj ({tag}): {seq} sync commits on the leader and a follower")
            lead = cluster.ask(leader, "sync", seq, 60.0)
            foll = cluster.ask(follower, "sync", seq, 60.0)
            for where, r in (("leader", lead), ("follower", foll)):
                details[f"sync_{where}_{tag}"] = {
                    "n": len(r["lat"]),
                    "errors": r["errors"],
                    "p50_ms": round(percentile(r["lat"], 50), 3),
                    "p99_ms": round(percentile(r["lat"], 99), 3),
                }
            out[f"async_commits_per_s_{tag}"] = metric(res["rate"], "commits/s")
            out[f"sync_leader_p50_ms_{tag}"] = metric(percentile(lead["lat"], 50), "ms")
            out[f"sync_leader_p99_ms_{tag}"] = metric(percentile(lead["lat"], 99), "ms")
            out[f"sync_follower_p50_ms_{tag}"] = metric(percentile(foll["lat"], 50), "ms")
    finally:
        cluster.stop()
    details["load_average_after"] = load_average()
    out["_details"] = details
    return out
