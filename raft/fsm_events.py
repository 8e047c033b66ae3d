"""Events: derived inside the FSM from the commands it applies.

Every server applies the same commands, so every server derives the same
events, with the same sequence numbers, into the same bounded ring (table
`events`, seq -> event). A client can therefore follow the stream on any
server and resume anywhere with the raft index (`?index=`) or a seq, and the
webhook deliverer on a new leader finds exactly what the old one had.

Pure like the rest of the FSM: the timestamp is the command's `ts`, and
nothing here raises into raft (a bug costs the events of one command, logged,
never the apply). Events carry names, ids and statuses: never secret values,
never job specs.

An event: `{"seq", "index", "type", "ts", "data"}`. `seq` numbers events
1, 2, 3...; several events (of one command or of one raft entry) may share an
`index`. `event_marks` remembers what was announced per job (deployed
version, failed version, status), so `job.deployed` is said once per version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from raft.state import State

log = logging.getLogger("heroctld.fsm")

EVENT_TYPES: tuple[str, ...] = (
    "job.submitted",  # a job (or a new version of it) was accepted
    "job.updated",  # a job's status changed, it cannot be placed, or it was deleted
    "job.deployed",  # every replica of its latest version runs and is healthy
    "job.failed",  # the rolling update of its latest version halted (unhealthy)
    "alloc.updated",  # an allocation was placed, changed status or health, was stopped
    "alloc.failed",  # an allocation failed or was lost with its node
    "node.updated",  # a node registered, came back, drains, changed eligibility
    "node.down",  # a node missed its heartbeats, or a server left the cluster
    "secret.changed",  # a secret got a new version or was deleted (names only)
    "cert.renewed",  # a TLS certificate was renewed (declared for the ingress)
)
TOPICS = tuple(sorted({t.split(".", 1)[0] for t in EVENT_TYPES}))
MAX_EVENTS = 10_000  # the ring: older events are dropped
EVENTS = "events"
MARKS = "event_marks"
SEQ_ROW = "seq"

Event = dict[str, Any]
Derived = list[tuple[str, dict[str, Any]]]


# --- topics ------------------------------------------------------------------------
def parse_topics(value: str | None) -> tuple[str, ...] | None:
    """`job,node.down` -> ("job", "node.down"); None or `*` means every event."""
    if value is None:
        return None
    topics = tuple(t.strip() for t in value.split(",") if t.strip())
    return None if not topics or "*" in topics else topics


def unknown_topics(topics: tuple[str, ...] | list[str]) -> list[str]:
    return [t for t in topics if t != "*" and t not in EVENT_TYPES and t not in TOPICS]


def matches(event_type: str, topics: tuple[str, ...] | list[str] | None) -> bool:
    """A topic is an exact type (`job.failed`), a prefix (`job`) or `*`."""
    if topics is None:
        return True
    return any(t == "*" or t == event_type or event_type.startswith(t + ".") for t in topics)


# --- the ring ---------------------------------------------------------------------
def last_seq(state: State) -> int:
    return state.table(MARKS).get(SEQ_ROW, 0)


def first_seq(state: State) -> int:
    """The oldest seq still in the ring (last + 1 when it is empty)."""
    last = last_seq(state)
    return max(1, last - len(state.table(EVENTS)) + 1)


def emit(state: State, event_type: str, data: dict[str, Any], ts: int, index: int) -> Event:
    """Append one event (also for other FSM modules, e.g. cert.renewed)."""
    marks = state.table(MARKS)
    seq = marks.get(SEQ_ROW, 0) + 1
    marks[SEQ_ROW] = seq
    event = {"seq": seq, "index": index, "type": event_type, "ts": ts, "data": data}
    events = state.table(EVENTS)
    events[seq] = event
    excess = len(events) - MAX_EVENTS
    if excess > 0:  # the ring holds seqs first..seq, contiguous: drop the oldest
        first = seq - len(events) + 1
        for old in range(first, first + excess):
            events.pop(old, None)
    state.touch(EVENTS, index)
    return event


def seq_at_index(state: State, index: int) -> int:
    """The last seq whose event index is <= `index` (first_seq - 1 if none is)."""
    events = state.table(EVENTS)
    lo, hi = first_seq(state), last_seq(state)
    found = lo - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if events[mid]["index"] <= index:
            found, lo = mid, mid + 1
        else:
            hi = mid - 1
    return found


def scan(
    state: State,
    after: int,
    topics: tuple[str, ...] | list[str] | None = None,
    limit: int = 1000,
) -> tuple[list[Event], int]:
    """(events with a seq > `after` that match `topics`, the last seq looked at).

    At most `limit` events, except that the events of the last returned
    index all come along, so that resuming by index loses none.
    """
    events = state.table(EVENTS)
    out: list[Event] = []
    last_index = None
    scanned = max(after, first_seq(state) - 1)
    for s in range(scanned + 1, last_seq(state) + 1):
        ev = events.get(s)
        if ev is None:  # never, unless a snapshot was tampered with
            scanned = s
            continue
        if len(out) >= limit and ev["index"] != last_index:
            break
        scanned = s
        if matches(ev["type"], topics):
            out.append(ev)
            last_index = ev["index"]
    return out, scanned


# --- derivation -----------------------------------------------------------------------
def _ts(cmd: dict[str, Any]) -> int:
    ts = cmd.get("ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


def _alloc_ids(cmd: dict[str, Any]) -> list[str]:
    op = cmd.get("op")
    if op == "alloc.update":
        items = cmd.get("updates") or []
        return [u["id"] for u in items if isinstance(u, dict) and isinstance(u.get("id"), str)]
    if op == "plan.apply":
        items = cmd.get("stops") or []
        return [s["id"] for s in items if isinstance(s, dict) and isinstance(s.get("id"), str)]
    if op == "alloc.stop":
        return [cmd["id"]] if isinstance(cmd.get("id"), str) else []
    return []


def _place_ids(cmd: dict[str, Any]) -> list[str]:
    items = cmd.get("places") or []
    if not isinstance(items, list):
        return []
    return [p["id"] for p in items if isinstance(p, dict) and isinstance(p.get("id"), str)]


def _node_id(cmd: dict[str, Any]) -> str | None:
    if cmd.get("op") == "node.register":
        node = cmd.get("node")
        nid = node.get("id") if isinstance(node, dict) else None
    else:
        nid = cmd.get("id")
    return nid if isinstance(nid, str) else None


def before(state: State, cmd: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the derivation needs to know from before a command (old documents)."""
    if cmd is None:
        return None
    try:
        op = cmd.get("op")
        if not isinstance(op, str):
            return None
        if op.startswith("node."):
            nid = _node_id(cmd)
            return {"node": state.table("nodes").get(nid) if nid else None}
        if op in ("alloc.update", "plan.apply", "alloc.stop"):
            allocs = state.table("allocations")
            pre: dict[str, Any] = {"allocs": {i: allocs.get(i) for i in _alloc_ids(cmd)}}
            if op == "plan.apply":  # a placement of an existing id is skipped by the FSM
                pre["existing"] = {i for i in _place_ids(cmd) if i in allocs}
            return pre
        if op == "job.delete" and isinstance(cmd.get("name"), str):
            return {"allocs": {a["id"]: a for a in state.allocs_of(job=cmd["name"])}}
        if op == "server.forget":
            return {"server": state.table("servers").get(cmd.get("name"))}
    except Exception:  # never into raft
        log.exception("event capture failed for %s", cmd.get("op"))
    return None


def after(
    state: State,
    cmd: dict[str, Any],
    result: dict[str, Any],
    index: int,
    pre: dict[str, Any] | None,
) -> None:
    """Derive and append the events of one applied command (total)."""
    if not result.get("ok"):
        return
    try:
        derive = _DERIVERS.get(cmd.get("op"))  # type: ignore[arg-type]
        if derive is None:
            return
        ts = _ts(cmd)
        for event_type, data in derive(state, cmd, result, pre or {}):
            emit(state, event_type, data, ts, index)
    except Exception:
        log.exception("event derivation failed for %s at index %d", cmd.get("op"), index)


def _alloc_data(doc: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "alloc": doc["id"],
        "name": doc.get("name"),
        "job": doc.get("job"),
        "group": doc.get("group"),
        "job_version": doc.get("job_version"),
        "node": doc.get("node"),
        "node_name": doc.get("node_name"),
        "status": doc.get("status"),
        "desired_status": doc.get("desired_status"),
        "healthy": doc.get("healthy"),
        "previous_status": old.get("status") if old else None,
        "reason": doc.get("desired_reason"),
    }


def _restarts(doc: dict[str, Any]) -> int:
    states = doc.get("task_states")
    if not isinstance(states, dict):
        return 0
    return sum(
        t.get("restarts", 0)
        for t in states.values()
        if isinstance(t, dict) and isinstance(t.get("restarts"), int)
    )


def _alloc_events(state: State, pre: dict[str, Any], placed: list[str] = ()) -> Derived:  # type: ignore[assignment]
    out: Derived = []
    allocs = state.table("allocations")
    for alloc_id, old in pre.get("allocs", {}).items():
        new = allocs.get(alloc_id)
        if new is None or new is old:
            continue
        data = _alloc_data(new, old)
        status, was = new.get("status"), old.get("status") if old else None
        if status in ("failed", "lost") and status != was:
            if status == "lost" and not data["reason"]:
                data["reason"] = "its node is gone"
            out.append(("alloc.failed", data))
            continue
        changed = old is None or any(
            new.get(k) != old.get(k) for k in ("status", "desired_status", "healthy")
        )
        if old is not None and _restarts(new) > _restarts(old):
            data["restarts"] = _restarts(new)
            changed = True
        if changed:
            out.append(("alloc.updated", data))
    for alloc_id in placed:
        doc = allocs.get(alloc_id)
        if doc is not None:
            out.append(("alloc.updated", dict(_alloc_data(doc, None), reason="placed")))
    return out


def _job_state(state: State, name: str) -> str:
    """pending (nothing runs yet), running (something runs) or dead (all stopped)."""
    allocs = state.allocs_of(job=name)
    if any(a["status"] == "running" and a["desired_status"] == "run" for a in allocs):
        return "running"
    if allocs and all(
        a["desired_status"] == "stop" or a["status"] in ("complete", "failed", "lost")
        for a in allocs
    ):
        return "dead"
    return "pending"


def _deployed(state: State, job: dict[str, Any]) -> int | None:
    """How many replicas, if every replica of the job's latest version runs healthy."""
    if job.get("type", "service") != "service":
        return None
    version = job.get("version")
    wanted: dict[str, int] = {}
    for g in job.get("groups") or ():
        if isinstance(g, dict) and isinstance(g.get("count", 1), int):
            wanted[g.get("name")] = g.get("count", 1)
    if not wanted or sum(wanted.values()) == 0:
        return None
    have: dict[str, int] = {}
    for a in state.allocs_of(job=job["name"]):
        if a["desired_status"] != "run" or a.get("job_version") != version:
            continue
        if a["status"] != "running" or a.get("healthy") is not True:
            return None
        have[a["group"]] = have.get(a["group"], 0) + 1
    if any(have.get(g, 0) < n for g, n in wanted.items()):
        return None
    return sum(have.values())


def _job_events(state: State, names: set[str]) -> Derived:
    """Status changes, deployed, failed and unplaceable for the jobs a command touched."""
    out: Derived = []
    jobs, marks, statuses = state.table("jobs"), state.table(MARKS), state.table("job_status")
    for name in sorted(names):
        job = jobs.get(name)
        key = f"job:{name}"
        mark = marks.get(key) or {}
        if job is None:
            if key in marks:
                del marks[key]
            continue
        version = job.get("version")
        new = dict(mark)
        status = _job_state(state, name)
        st = statuses.get(name) or {}
        failures = len(st.get("failures") or ())
        moved = "status" in mark and status != mark["status"]
        if moved or failures != mark.get("unplaced", 0):
            data = {"job": name, "version": version, "status": status}
            data["previous_status"] = mark.get("status")
            data["placement_failures"] = failures
            out.append(("job.updated", data))
        new.update(status=status, unplaced=failures)
        halted = st.get("halted") or {}
        if halted and st.get("job_version") == version and mark.get("failed") != version:
            reasons = [f"{g}: {r}" for g, r in sorted(halted.items())]
            out.append(
                ("job.failed", {"job": name, "version": version, "reason": "; ".join(reasons)})
            )
            new["failed"] = version
        count = _deployed(state, job)
        if count is not None and mark.get("deployed") != version:
            out.append(("job.deployed", {"job": name, "version": version, "allocations": count}))
            new["deployed"] = version
        if new != mark:
            marks[key] = new
    return out


def _jobs_of(pre: dict[str, Any], state: State) -> set[str]:
    names = set()
    allocs = state.table("allocations")
    for alloc_id, old in pre.get("allocs", {}).items():
        doc = allocs.get(alloc_id) or old
        if doc is not None:
            names.add(doc["job"])
    return names


def _on_job_upsert(state: State, cmd: dict[str, Any], result: dict[str, Any], pre: Any) -> Derived:
    job = result.get("job") or {}
    name = job.get("name")
    data = {
        "job": name,
        "version": job.get("version"),
        "type": job.get("type", "service"),
        "created": bool(result.get("created")),
    }
    return [("job.submitted", data), *_job_events(state, {name})]


def _on_job_delete(state: State, cmd: dict[str, Any], result: dict[str, Any], pre: Any) -> Derived:
    name = result.get("name")
    out = _alloc_events(state, pre)
    out.append(("job.updated", {"job": name, "status": "deleted"}))
    state.table(MARKS).pop(f"job:{name}", None)
    return out


def _on_allocs(state: State, cmd: dict[str, Any], result: dict[str, Any], pre: Any) -> Derived:
    placed: list[str] = []
    names = _jobs_of(pre, state)
    if cmd.get("op") == "plan.apply":
        existing = pre.get("existing") or set()
        placed = [i for i in _place_ids(cmd) if i not in existing]
        if isinstance(cmd.get("job"), str):
            names.add(cmd["job"])
    return [*_alloc_events(state, pre, placed), *_job_events(state, names)]


def _node_data(doc: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "node": doc["id"],
        "name": doc.get("name"),
        "status": doc.get("status"),
        "previous_status": old.get("status") if old else None,
        "eligibility": doc.get("eligibility"),
        "draining": bool(doc.get("drain")),
    }


def _on_node(state: State, cmd: dict[str, Any], result: dict[str, Any], pre: Any) -> Derived:
    nid = _node_id(cmd)
    new = state.table("nodes").get(nid) if nid else None
    old = pre.get("node")
    if new is None or new is old:
        return []
    data = _node_data(new, old)
    if new.get("status") == "down" and (old is None or old.get("status") != "down"):
        return [("node.down", data)]
    if old is not None and all(
        new.get(k) == old.get(k) for k in ("status", "eligibility", "drain", "name", "address")
    ):
        return []  # a re-registration that changed nothing people watch
    action = {
        "node.register": "registered" if old is None else "re-registered",
        "node.status": "status",
        "node.drain": "drain" if new.get("drain") else "drain cancelled",
        "node.drain_complete": "drain complete",
        "node.eligibility": "eligibility",
    }.get(cmd.get("op", ""), "updated")
    return [("node.updated", dict(data, action=action))]


def _on_server_forget(
    state: State, cmd: dict[str, Any], result: dict[str, Any], pre: Any
) -> Derived:
    row = pre.get("server") or {}
    return [
        (
            "node.down",
            {
                "server": cmd.get("name"),
                "raft_address": row.get("raft_address"),
                "reason": "removed from the cluster",
            },
        )
    ]


def _on_secret_put(state: State, cmd: dict[str, Any], result: dict[str, Any], pre: Any) -> Derived:
    meta = result.get("secret") or {}
    action = "created" if result.get("created") else "updated"
    data: dict[str, Any] = {"name": meta.get("name"), "version": meta.get("version")}
    if isinstance(cmd.get("rollback_of"), int):
        action = "rolled_back"
        data["rollback_of"] = cmd["rollback_of"]
    return [("secret.changed", dict(data, action=action))]


def _on_secret_delete(
    state: State, cmd: dict[str, Any], result: dict[str, Any], pre: Any
) -> Derived:
    return [("secret.changed", {"name": result.get("name"), "version": None, "action": "deleted"})]


Deriver = Callable[[State, dict[str, Any], dict[str, Any], Any], Derived]
_DERIVERS: dict[str, Deriver] = {
    "job.upsert": _on_job_upsert,
    "job.delete": _on_job_delete,
    "plan.apply": _on_allocs,
    "alloc.update": _on_allocs,
    "alloc.stop": _on_allocs,
    "node.register": _on_node,
    "node.status": _on_node,
    "node.drain": _on_node,
    "node.drain_complete": _on_node,
    "node.eligibility": _on_node,
    "server.forget": _on_server_forget,
    "secret.put": _on_secret_put,
    "secret.delete": _on_secret_delete,
}
