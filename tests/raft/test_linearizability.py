"""Chaos: CAS writes and consistent reads on three jobs while the leader is killed,
paused and cut off; the recorded history must be linearizable.

Clients talk to random servers with a short timeout and record every operation
(invoke and response on this process's monotonic clock). A 503 or a timeout is
an unknown outcome, a refused connection never reached a server. The nemesis
strikes the current leader every few seconds, heals it, and waits for the
cluster to be whole again before the next fault. At the end everything is
healed, one more consistent read per key and server joins the history, and the
WGL checker (tests/support/linearizability.py) judges it.

The second test is a deterministic reproduction of the one violation the chaos
test found (a deposed leader acknowledging a write while it receives a snapshot).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import threading
import time
import urllib.error
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, Server
from tests.support.http import Reply
from tests.support.linearizability import (
    CAS,
    CONFLICT,
    OK,
    READ,
    UNKNOWN,
    History,
    Op,
    check,
    max_acknowledged_index,
)

pytestmark = pytest.mark.slow

KEYS = ("lin-a", "lin-b", "lin-c")
CLIENTS = 5
WORKLOAD_SECONDS = 45.0
REQUEST_TIMEOUT = 3.0
RECOVERY_TIMEOUT = 25.0
# Compact often (defaults: 5000 entries / 300 s) so snapshots are taken, loaded on
# restart and shipped to lagging servers during the run. pysyncobj staggers the
# servers' compactions over the min-time period, so that must be short too.
COMPACTION_ENV = {
    "HEROCTL_RAFT_COMPACTION_MIN_ENTRIES": "300",
    "HEROCTL_RAFT_COMPACTION_MIN_TIME": "6",
}


# --- clients -------------------------------------------------------------------------


def job_body(key: str, value: str, expected: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": key,
        "type": "service",
        "image": "busybox:latest",
        "meta": {"lin": value},
    }
    if expected is not None:
        body["job_modify_index"] = expected
    return body


def _refused(exc: BaseException) -> bool:
    """True when the request certainly never reached a server."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    return isinstance(exc, ConnectionRefusedError)


class Client(threading.Thread):
    """Random reads and CAS writes; the expected index is the last one this client saw."""

    def __init__(
        self, n: int, cluster: Cluster, history: History, stop: threading.Event, seed: int
    ) -> None:
        super().__init__(name=f"client-{n}", daemon=True)
        self.cname = f"c{n}"
        self.servers = list(cluster.servers)
        self.history = history
        self.stop = stop
        self.rng = random.Random(seed)
        self.last_seen = dict.fromkeys(KEYS, 0)
        self.seq = 0
        self.unexpected: list[str] = []  # statuses the contract does not allow here
        self.crash: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                key = self.rng.choice(KEYS)
                roll = self.rng.random()
                if roll < 0.3:
                    self.read(self.rng.choice(self.servers), key)
                elif roll < 0.65:  # read the current index, then write from it
                    if self.read(self.rng.choice(self.servers), key):
                        self.cas(self.rng.choice(self.servers), key)
                else:  # write from whatever index we saw last (often stale: a conflict)
                    self.cas(self.rng.choice(self.servers), key)
                self.stop.wait(self.rng.uniform(0.0, 0.03))  # think time, keeps the CPU free
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.crash = exc

    def _send(self, server: Server, op: Op, send: Any) -> Reply | None:
        """The reply, or None after recording the op as unknown / discarded."""
        try:
            return send()
        except OSError as exc:  # URLError, timeouts, resets are all OSErrors
            if _refused(exc):
                self.history.discard(op)
                self.stop.wait(0.05)  # the server is down; do not spin
            else:
                self.history.unknown(op)
            return None
        except Exception:  # http.client errors (RemoteDisconnected is an OSError, others not)
            self.history.unknown(op)
            return None

    def read(self, server: Server, key: str) -> bool:
        op = self.history.invoke(self.cname, READ, key, server=server.name)
        reply = self._send(
            server, op, lambda: server.get(f"/v1/jobs/{key}", timeout=REQUEST_TIMEOUT)
        )
        if reply is None:
            return False
        body = reply.body
        if reply.status == 200:
            index = body["job_modify_index"]
            self.history.read_ok(op, index, body.get("meta", {}).get("lin"))
            self.last_seen[key] = index
            return True
        if reply.status == 404 and body.get("error") == "job_not_found":
            self.history.absent(op)
            self.last_seen[key] = 0
            return True
        self.history.unknown(op)
        if reply.status != 503:
            self.unexpected.append(f"GET {key} on {server.name}: {reply.status} {body}")
        return False

    def cas(self, server: Server, key: str) -> None:
        self.seq += 1
        value = f"{self.cname}-{self.seq}"
        expected = self.last_seen[key]
        op = self.history.invoke(
            self.cname, CAS, key, expected=expected, value=value, server=server.name
        )
        body = job_body(key, value, expected)
        reply = self._send(
            server, op, lambda: server.post("/v1/jobs", body, timeout=REQUEST_TIMEOUT)
        )
        if reply is None:
            return
        doc = reply.body
        if reply.status in (200, 201):
            index = doc["job_modify_index"]
            self.history.cas_ok(op, index)
            self.last_seen[key] = index
            want = 201 if expected == 0 else 200
            if reply.status != want or doc.get("meta", {}).get("lin") != value:
                self.unexpected.append(f"POST {key} from {expected} answered {reply.status} {doc}")
        elif reply.status == 409 and doc.get("error") == "conflict":
            self.history.conflict(op)
        else:
            self.history.unknown(op)
            if reply.status != 503:
                self.unexpected.append(f"POST {key} on {server.name}: {reply.status} {doc}")


# --- the nemesis -------------------------------------------------------------------------


def iptables_usable() -> bool:
    if shutil.which("iptables") is None or os.geteuid() != 0:
        return False
    try:
        return (
            subprocess.run(
                ["iptables", "-w", "-L", "-n"], capture_output=True, timeout=10
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _iptables(*args: str, check: bool = True) -> None:
    subprocess.run(["iptables", "-w", *args], check=check, capture_output=True, timeout=10)


def _outbound_connections(pid: int, remote_ports: set[int]) -> set[tuple[int, int]]:
    """(local port, remote port) of `pid`'s TCP sockets to `remote_ports` on 127.0.0.1."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    except OSError:
        return set()
    found = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if int(parts[9]) not in inodes:
                continue
            local_port = int(parts[1].split(":")[1], 16)
            remote_port = int(parts[2].split(":")[1], 16)
            if remote_port in remote_ports:
                found.add((local_port, remote_port))
    return found


class LeaderPartition:
    """Drops every raft packet to and from one server on lo.

    pysyncobj connects from the greater address to the lesser, so a server's
    raft traffic is not only on its own listening port (the connections its
    peers opened) but also on the ephemeral ports of the connections it opened
    to them; `refresh()` finds those in /proc and drops them too (call it
    while the partition lasts: a reconnect picks a new ephemeral port). The
    rules live in one chain of our own, removed in `__exit__` whatever happens.
    """

    def __init__(self, server: Server, peers: list[Server]) -> None:
        self.server = server
        self.peer_ports = {p.raft_port for p in peers if p is not server}
        self.chain = f"HCTL-NEM-{os.getpid()}"
        self.blocked: set[tuple[int, int]] = set()

    def __enter__(self) -> LeaderPartition:
        try:
            _iptables("-N", self.chain)
            _iptables("-I", "INPUT", "-i", "lo", "-j", self.chain)
            _iptables("-I", "OUTPUT", "-o", "lo", "-j", self.chain)
            port = str(self.server.raft_port)
            for direction in ("--dport", "--sport"):
                _iptables("-A", self.chain, "-p", "tcp", direction, port, "-j", "DROP")
            self.refresh()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def refresh(self) -> None:
        assert self.server.proc is not None
        for local, remote in _outbound_connections(self.server.proc.pid, self.peer_ports):
            if (local, remote) in self.blocked:
                continue
            self.blocked.add((local, remote))
            for src, dst in ((local, remote), (remote, local)):
                _iptables("-A", self.chain, "-p", "tcp", "--sport", str(src),
                          "--dport", str(dst), "-j", "DROP")  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        _iptables("-D", "INPUT", "-i", "lo", "-j", self.chain, check=False)
        _iptables("-D", "OUTPUT", "-o", "lo", "-j", self.chain, check=False)
        _iptables("-F", self.chain, check=False)
        _iptables("-X", self.chain, check=False)


@dataclass
class Fault:
    kind: str
    server: str
    start: float
    end: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


class Nemesis(threading.Thread):
    def __init__(self, cluster: Cluster, stop: threading.Event, seed: int) -> None:
        super().__init__(name="nemesis", daemon=True)
        self.cluster = cluster
        self.stop = stop
        self.rng = random.Random(seed)
        self.kinds = ["kill", "pause"] + (["partition"] if iptables_usable() else [])
        self.faults: list[Fault] = []
        self.errors: list[str] = []

    def run(self) -> None:
        bag: list[str] = []
        try:
            while not self.stop.is_set():
                if self.stop.wait(self.rng.uniform(1.0, 2.5)):  # a calm spell
                    break
                try:
                    leader = self.cluster.leader(timeout=RECOVERY_TIMEOUT)
                except TimeoutError as exc:
                    self.errors.append(f"no leader before fault {len(self.faults) + 1}: {exc}")
                    return
                if not bag:  # every kind comes up once per round, in random order
                    bag = self.rng.sample(self.kinds, len(self.kinds))
                fault = Fault(bag.pop(), leader.name, time.monotonic())
                self.faults.append(fault)
                try:
                    getattr(self, fault.kind)(leader, fault)
                finally:
                    fault.end = time.monotonic()
                try:
                    self.cluster.wait_ready(self.cluster.servers, timeout=RECOVERY_TIMEOUT)
                except TimeoutError as exc:
                    self.errors.append(f"cluster did not recover after {fault}: {exc}")
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"nemesis crashed: {exc!r}")

    def _note_new_leader(self, victim: Server, fault: Fault) -> None:
        """Which other server leads at the end of the fault (None: no failover yet)."""
        for s in self.cluster.servers:
            st = s.status() if s is not victim and s.alive else None
            if st and st["is_leader"]:
                fault.detail["new_leader"] = s.name
                return
        fault.detail["new_leader"] = None

    def kill(self, server: Server, fault: Fault) -> None:
        server.kill()
        down = self.rng.uniform(0.5, 2.0)
        fault.detail["down_s"] = round(down, 2)
        time.sleep(down)  # a time-boxed outage
        self._note_new_leader(server, fault)
        server.start(peers=self.cluster.peers)

    def pause(self, server: Server, fault: Fault) -> None:
        held = self.rng.uniform(3.0, 4.0)
        fault.detail["paused_s"] = round(held, 2)
        server.pause()
        try:
            time.sleep(held)
            self._note_new_leader(server, fault)
        finally:
            server.resume()

    def partition(self, server: Server, fault: Fault) -> None:
        held = self.rng.uniform(3.0, 5.0)
        fault.detail["cut_s"] = round(held, 2)
        with LeaderPartition(server, self.cluster.servers) as cut:
            until = time.monotonic() + held
            while time.monotonic() < until:
                cut.refresh()
                time.sleep(0.02)
            fault.detail["outbound_connections_cut"] = len(cut.blocked)
            self._note_new_leader(server, fault)


def heal(cluster: Cluster) -> None:
    for s in cluster.servers:
        if s.alive:
            s.resume()
        else:
            s.start(peers=cluster.peers)


# --- the test -------------------------------------------------------------------------------


def final_read(history: History, server: Server, key: str) -> Op:
    """A consistent read that must get a definite answer once the cluster is whole."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    last = "nothing yet"
    while time.monotonic() < deadline:
        op = history.invoke("final", READ, key, server=server.name)
        try:
            r = server.get(f"/v1/jobs/{key}", timeout=REQUEST_TIMEOUT)
        except OSError as exc:
            history.unknown(op)
            last = repr(exc)
            time.sleep(0.1)
            continue
        if r.status == 200:
            history.read_ok(op, r.body["job_modify_index"], r.body.get("meta", {}).get("lin"))
            return op
        if r.status == 404 and r.body.get("error") == "job_not_found":
            history.absent(op)
            return op
        history.unknown(op)
        last = f"{r.status} {r.body}"
        time.sleep(0.1)
    raise AssertionError(
        f"no definite final read of {key} on {server.name} in {RECOVERY_TIMEOUT}s "
        f"(cluster healed and ready); last answer: {last}"
    )


def summarize(ops: list[Op], faults: list[Fault]) -> dict[str, Any]:
    def count(kind: str, status: str) -> int:
        return sum(1 for o in ops if o.kind == kind and o.status == status)

    first_fault = faults[0].start if faults else float("inf")
    acked = [o for o in ops if o.kind == CAS and o.status == OK]
    during = [o for o in acked if any(f.start <= o.response <= f.end for f in faults)]
    return {
        "ops": len(ops),
        "cas_ok": len(acked),
        "cas_conflict": count(CAS, CONFLICT),
        "cas_unknown": count(CAS, UNKNOWN),
        "read_ok": count(READ, OK),
        "read_absent": count(READ, "absent"),
        "read_unknown": count(READ, UNKNOWN),
        "cas_ok_after_first_fault": sum(1 for o in acked if o.invoke > first_fault),
        "cas_ok_during_faults": len(during),
        "failovers": sum(1 for f in faults if f.detail.get("new_leader")),
        "faults": [
            f"{f.kind}({f.server}, {f.end - f.start:.1f}s -> {f.detail.get('new_leader')})"
            for f in faults
        ],
    }


def dump(path: Path, ops: list[Op], faults: list[Fault]) -> None:
    with path.open("w") as f:
        for o in sorted(ops, key=lambda o: o.invoke):
            row = asdict(o)
            row["response"] = None if row["response"] == float("inf") else row["response"]
            f.write(json.dumps(row) + "\n")
        for fault in faults:
            f.write(json.dumps({"fault": asdict(fault)}) + "\n")


def test_cas_history_is_linearizable_under_leader_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("HEROCTL_CHAOS_SEED", random.randrange(1 << 30)))
    started = time.monotonic()
    cluster = Cluster(tmp_path, 3, env=COMPACTION_ENV).start()
    history = History()
    stop = threading.Event()
    clients = [Client(n, cluster, history, stop, seed + n) for n in range(CLIENTS)]
    nemesis = Nemesis(cluster, stop, seed)
    history_file = tmp_path / "history.jsonl"
    finals: dict[str, list[Op]] = {}
    try:
        for c in clients:
            c.start()
        nemesis.start()
        stop.wait(WORKLOAD_SECONDS)
        stop.set()
        for t in [*clients, nemesis]:
            t.join(timeout=REQUEST_TIMEOUT + RECOVERY_TIMEOUT + 10)
            assert not t.is_alive(), f"{t.name} did not stop"
        heal(cluster)
        cluster.wait_ready(cluster.servers, timeout=RECOVERY_TIMEOUT)
        for key in KEYS:
            finals[key] = [final_read(history, s, key) for s in cluster.servers]
    finally:
        stop.set()
        try:
            heal(cluster)
        finally:
            cluster.stop()
            dump(history_file, history.ops, nemesis.faults)
            print(f"seed={seed} history={history_file}")

    ops = history.ops
    faults = nemesis.faults
    stats = summarize(ops, faults)
    checked_at = time.monotonic()
    result = check(ops)
    stats["check_s"] = round(time.monotonic() - checked_at, 2)
    stats["total_s"] = round(time.monotonic() - started, 1)
    stats["seed"] = seed
    stats["snapshots"] = sum(s.log().count("snapshot written") for s in cluster.servers)
    stats["truncated_applied_entries_warnings"] = sum(
        s.log().count("truncating already-applied") for s in cluster.servers
    )
    print(f"linearizability chaos run: {json.dumps(stats)}")

    context = f"seed={seed} stats={stats} history={history_file}"
    assert not [c.crash for c in clients if c.crash], context
    unexpected = [u for c in clients for u in c.unexpected]
    assert not unexpected, f"unexpected replies: {unexpected[:10]} ({context})"
    assert not nemesis.errors, f"{nemesis.errors} ({context})"
    assert result.ok, f"{context}\n{result.report()}"
    for key in KEYS:
        acked = max_acknowledged_index(ops, key)
        for op in finals[key]:
            seen = op.index if op.status == OK else 0
            assert seen >= acked, (
                f"acknowledged write lost: final read {op.describe()} but a CAS on {key} "
                f"was acknowledged at index {acked} ({context})"
            )
    # The run must have exercised something: faults, and writes that succeeded
    # while a fault lasted and after the first one, plus conflicts.
    assert len(faults) >= 3, context
    assert stats["cas_ok_after_first_fault"] >= 10, context
    assert stats["cas_ok_during_faults"] >= 1, context
    assert stats["cas_conflict"] >= 1, context


# --- a targeted reproduction -------------------------------------------------------------


def snapshot_indexes(server: Server) -> list[int]:
    return [int(m) for m in re.findall(r"snapshot written at index (\d+)", server.log())]


def test_deposed_leader_does_not_ack_a_write_the_new_leader_compacted_away(
    tmp_path: Path,
) -> None:
    """A leader cut off from its peers appends a CAS in its old term; the others elect
    a new leader, accept a conflicting CAS from the same index, and compact past it.
    When the old leader rejoins it must not acknowledge its own uncommitted write.

    Found by the chaos test above (two CAS from the same job_modify_index both
    acknowledged). pysyncobj 0.3.17, follower side of `append_entries`: a message
    without `prevLogIdx` (the leader is sending a snapshot, in 16 KiB pieces) still
    runs `commit = min(leader_commit, own last log index)`, so the rejoining
    server commits and applies its own stale entries from its old term. Its
    pending callback sees a matching term and reports success; the HTTP client
    gets 200 for a write the cluster never committed, and the snapshot then
    silently replaces the state. The fix, in raft/pysyncobj_glue.py's
    `route_messages`: for `append_entries` without `prevLogIdx`, clamp `commit_index`
    to the local `raftCommitIndex` before handing the message to pysyncobj (this
    test then passes and the old leader answers 503, an unknown outcome).
    """
    if not iptables_usable():
        pytest.skip("needs iptables as root")
    env = {
        "HEROCTL_RAFT_COMPACTION_MIN_ENTRIES": "20",
        "HEROCTL_RAFT_COMPACTION_MIN_TIME": "1",
        # Long enough that the cut-off leader's request is still waiting when it rejoins.
        "HEROCTL_RAFT_NO_LEADER_TIMEOUT": "12",
    }
    cluster = Cluster(tmp_path, 3, env=env).start()
    try:
        old = cluster.leader()
        others = [s for s in cluster.servers if s is not old]
        key = "split"
        created = old.post("/v1/jobs", job_body(key, "base", 0))
        assert created.status == 201, created.body
        base = created.body["job_modify_index"]
        replies: dict[str, Reply | BaseException] = {}

        def write_on_old() -> None:
            try:
                replies["old"] = old.post("/v1/jobs", job_body(key, "old", base), timeout=40)
            except BaseException as exc:  # noqa: BLE001 - inspected below
                replies["old"] = exc

        with LeaderPartition(old, cluster.servers) as cut:
            writer = threading.Thread(target=write_on_old, daemon=True)
            writer.start()
            new = cluster.leader(among=others, timeout=15)
            won = new.post("/v1/jobs", job_body(key, "new", base), timeout=10)
            assert won.status == 200, won.body
            replies["new"] = won
            # Move the new leader's log on until it has compacted past the deposed
            # leader's entry, so the old leader will be sent a snapshot, and one big
            # enough to arrive over several ticks (pysyncobj sends it in 16 KiB
            # pieces). Keep the cut for longer than pysyncobj's 3 s connection
            # timeout, so no append buffered in TCP reaches the old leader first.
            hold_until = time.monotonic() + 4.5
            deadline = time.monotonic() + 30
            snapshot = new.data_dir / "raft.snapshot"
            n = 0

            def ready_to_heal() -> bool:
                if time.monotonic() < hold_until:
                    return False
                if not any(i > won.body["job_modify_index"] + 2 for i in snapshot_indexes(new)):
                    return False
                return snapshot.exists() and snapshot.stat().st_size > 1_000_000

            while not ready_to_heal():
                assert time.monotonic() < deadline, "the new leader never took a big snapshot"
                n += 1
                filler = job_body("filler", f"f{n}", None)
                filler["meta"]["pad"] = "x" * 20_000
                new.post("/v1/jobs", filler, timeout=10)
                cut.refresh()
        writer.join(60)
        assert not writer.is_alive()
        cluster.wait_ready(cluster.servers, timeout=RECOVERY_TIMEOUT)
        final = new.get(f"/v1/jobs/{key}").body
    finally:
        heal(cluster)
        cluster.stop()
    old_reply = replies["old"]
    summary = (
        f"old leader {old.name} answered {getattr(old_reply, 'status', old_reply)} "
        f"{getattr(old_reply, 'body', '')}; new leader {new.name} answered 200 "
        f"job_modify_index={won.body['job_modify_index']}; final {final['meta']} "
        f"at {final['job_modify_index']}"
    )
    print(summary)
    assert final["meta"]["lin"] == "new", summary
    # Both CAS started from the same index: at most one may have succeeded.
    assert getattr(old_reply, "status", None) not in (200, 201), summary
