"""A Wing–Gong linearizability checker for job check-and-set histories.

The object under test is one register per job name holding
`(job_modify_index, value)`, or nothing:

- `cas(key, expected, value)`: applies only if the current index equals
  `expected` (0 = the job must not exist); on success the index becomes the
  raft index returned by the server, which must be above the previous one.
  Results: `ok(new_index)`, `conflict`, or `unknown` (503 / timeout / reset:
  it may or may not have applied).
- `read(key)`: `(index, value)` or `absent`.

`check()` splits the history by key (linearizability is compositional) and runs
the WGL search with Lowe's memoization on every key: repeatedly linearize a
pending operation whose precondition holds, backtrack when an operation's
response is reached before it could be linearized, and never revisit a
(set of linearized ops, register state) pair.

Unknown outcomes: an unknown op's response time is +infinity, so it may be
linearized at any point after its invocation, and the search succeeds as soon
as every op with a known outcome is linearized (an unknown op may also never
take effect). An unknown CAS that took effect got a raft index we never saw;
values are unique per key, so a read that returned its value tells us that
index. If no read saw it, the index is a placeholder equal to no number (any
client that later used that index in a CAS must have read it, with its value).
The model is thus nondeterministic; the search runs on sets of possible states
(the usual powerset construction), which keeps it deterministic and cacheable.

Unknown reads constrain nothing and are ignored.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

CAS = "cas"
READ = "read"

OK = "ok"
CONFLICT = "conflict"
ABSENT = "absent"
UNKNOWN = "unknown"


@dataclass
class Op:
    """One client operation on one key; times come from one monotonic clock."""

    kind: str  # CAS or READ
    key: str
    invoke: float
    response: float = math.inf  # +inf while pending or when the outcome is unknown
    status: str = UNKNOWN  # CAS: OK | CONFLICT | UNKNOWN; READ: OK | ABSENT | UNKNOWN
    expected: int | None = None  # CAS: the job_modify_index it requires
    value: Hashable = None  # CAS: the value written; READ ok: the value read
    index: int | None = None  # CAS ok: the new index; READ ok: the index read
    client: str = ""
    id: int = -1
    server: str = ""  # where the request went (for reports only)

    def describe(self, t0: float = 0.0) -> str:
        if self.kind == CAS:
            call = f"cas({self.key!r}, expected={self.expected}, value={self.value!r})"
            out = f"ok(index={self.index})" if self.status == OK else self.status
        else:
            call = f"read({self.key!r})"
            out = (
                f"(index={self.index}, value={self.value!r})" if self.status == OK else self.status
            )
        end = "inf" if math.isinf(self.response) else f"{self.response - t0:+.4f}s"
        who = f"{self.client} " if self.client else ""
        where = f" @{self.server}" if self.server else ""
        return f"#{self.id} {who}{call} -> {out}  [{self.invoke - t0:+.4f}s .. {end}]{where}"


def cas(
    key: str,
    expected: int,
    value: Hashable,
    invoke: float,
    response: float = math.inf,
    status: str = UNKNOWN,
    index: int | None = None,
    client: str = "",
) -> Op:
    """A CAS op for hand-made histories (status OK needs `index`)."""
    if status == OK and index is None:
        raise ValueError("a successful cas needs the new index")
    return Op(CAS, key, invoke, response, status, expected, value, index, client)


def read(
    key: str,
    invoke: float,
    response: float,
    result: tuple[int, Hashable] | None,
    client: str = "",
) -> Op:
    """A completed read for hand-made histories: `(index, value)` or None (absent)."""
    if result is None:
        return Op(READ, key, invoke, response, ABSENT, client=client)
    return Op(READ, key, invoke, response, OK, value=result[1], index=result[0], client=client)


class History:
    """A thread-safe recorder: `invoke()` before the request, one completion after."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: list[Op] = []
        self._ids = itertools.count()

    def invoke(
        self,
        client: str,
        kind: str,
        key: str,
        expected: int | None = None,
        value: Hashable = None,
        server: str = "",
    ) -> Op:
        op = Op(kind, key, self._clock(), expected=expected, value=value, client=client)
        op.server = server
        with self._lock:
            op.id = next(self._ids)
            self._ops.append(op)
        return op

    def _finish(self, op: Op, status: str, index: int | None = None) -> None:
        op.response = self._clock()
        op.status = status
        op.index = index

    def cas_ok(self, op: Op, index: int) -> None:
        self._finish(op, OK, index)

    def conflict(self, op: Op) -> None:
        self._finish(op, CONFLICT)

    def read_ok(self, op: Op, index: int, value: Hashable) -> None:
        op.value = value
        self._finish(op, OK, index)

    def absent(self, op: Op) -> None:
        self._finish(op, ABSENT)

    def unknown(self, op: Op) -> None:
        """The outcome is unknown: the op may take effect at any time, or never."""
        op.status = UNKNOWN
        op.response = math.inf

    def discard(self, op: Op) -> None:
        """The op certainly never reached a server (e.g. connection refused)."""
        with self._lock:
            self._ops.remove(op)

    @property
    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)


# --- the model --------------------------------------------------------------


@dataclass(frozen=True)
class Unobserved:
    """The index of an unknown CAS that took effect but was never read back."""

    op_id: int

    def __repr__(self) -> str:
        return f"<unseen index of #{self.op_id}>"


Register = tuple[Any, Hashable] | None  # (index, value), or None when the job is absent
States = frozenset[Register]


def _current_index(state: Register) -> Any:
    return 0 if state is None else state[0]


def _step_one(state: Register, op: Op, candidates: tuple[Any, ...]) -> list[Register]:
    if op.kind == READ:
        if op.status == ABSENT:
            return [state] if state is None else []
        return [state] if state == (op.index, op.value) else []
    cur = _current_index(state)
    if op.status == CONFLICT:
        return [state] if cur != op.expected else []
    if cur != op.expected:
        return []
    if op.status == OK:
        assert op.index is not None
        if isinstance(cur, int) and op.index <= cur:
            return []  # a raft index never goes back
        return [(op.index, op.value)]
    # UNKNOWN and taking effect: at one of the indexes a read saw its value at.
    return [
        (i, op.value)
        for i in candidates
        if not (isinstance(cur, int) and isinstance(i, int) and i <= cur)
    ]


def _step(states: States, op: Op, candidates: tuple[Any, ...]) -> States:
    out: set[Register] = set()
    for s in states:
        out.update(_step_one(s, op, candidates))
    return frozenset(out)


def _describe_states(states: States) -> str:
    def one(s: Register) -> str:
        return "absent" if s is None else f"(index={s[0]!r}, value={s[1]!r})"

    if len(states) == 1:
        return one(next(iter(states)))
    return "one of " + ", ".join(sorted(one(s) for s in states))


# --- the search ---------------------------------------------------------------


class _Entry:
    __slots__ = ("op", "bit", "is_call", "time", "prev", "next", "match")

    def __init__(self, op: Op, bit: int, is_call: bool, t: float) -> None:
        self.op = op
        self.bit = bit
        self.is_call = is_call
        self.time = t
        self.prev: _Entry | None = None
        self.next: _Entry | None = None
        self.match: _Entry | None = None


def _lift(e: _Entry) -> None:
    for x in (e, e.match):
        assert x is not None and x.prev is not None
        x.prev.next = x.next
        if x.next is not None:
            x.next.prev = x.prev


def _unlift(e: _Entry) -> None:
    for x in (e.match, e):
        assert x is not None and x.prev is not None
        x.prev.next = x
        if x.next is not None:
            x.next.prev = x


@dataclass
class KeyResult:
    key: str
    ok: bool
    ops: list[Op]
    states_explored: int
    linearization: list[Op] = field(default_factory=list)  # when ok: one witness order
    inconclusive: bool = False  # the search ran out of budget
    # Counterexample (when not ok): the deepest partial linearization found.
    prefix: list[Op] = field(default_factory=list)
    prefix_state: States = frozenset()
    blocked: Op | None = None
    candidates: list[Op] = field(default_factory=list)

    def report(self, t0: float | None = None, tail: int = 12) -> str:
        if t0 is None:
            t0 = min((o.invoke for o in self.ops), default=0.0)
        known = sum(1 for o in self.ops if o.status != UNKNOWN)
        head = (
            f"key {self.key!r}: {len(self.ops)} ops ({len(self.ops) - known} unknown), "
            f"{self.states_explored} search steps: "
        )
        if self.ok:
            return head + "linearizable"
        if self.inconclusive:
            return head + "INCONCLUSIVE (search budget exhausted)"
        lines = [head + "NOT linearizable"]
        shown = self.prefix[-tail:]
        lines.append(
            f"  deepest linearization found orders {len(self.prefix)} ops"
            + (f"; its last {len(shown)}:" if shown else ".")
        )
        lines += [f"    {o.describe(t0)}" for o in shown]
        lines.append(f"  register after it: {_describe_states(self.prefix_state)}")
        if self.blocked is not None:
            lines.append("  this op returned, but cannot take effect in any order explored:")
            lines.append(f"    {self.blocked.describe(t0)}")
        others = [o for o in self.candidates if o is not self.blocked]
        if others:
            lines.append("  ops that could still be ordered before it (every choice dead-ends):")
            lines += [f"    {o.describe(t0)}" for o in others]
        return "\n".join(lines)


def _candidate_indexes(ops: list[Op]) -> dict[int, tuple[Any, ...]]:
    """For each unknown CAS: the indexes its value was read at, else a placeholder."""
    seen: dict[Hashable, set[int]] = defaultdict(set)
    for o in ops:
        if o.kind == READ and o.status == OK:
            assert o.index is not None
            seen[o.value].add(o.index)
    out: dict[int, tuple[Any, ...]] = {}
    for o in ops:
        if o.kind == CAS and o.status == UNKNOWN:
            found = seen.get(o.value)
            out[o.id] = tuple(sorted(found)) if found else (Unobserved(o.id),)
    return out


def check_key(
    key: str, ops: list[Op], initial: Register = None, max_steps: int = 5_000_000
) -> KeyResult:
    ops = [o for o in ops if not (o.kind == READ and o.status == UNKNOWN)]
    writers: dict[Hashable, Op] = {}
    for o in ops:
        if o.kind == CAS:
            if o.value in writers:
                raise ValueError(
                    f"key {key!r}: value {o.value!r} is written twice; values must be unique"
                )
            writers[o.value] = o
    candidates = _candidate_indexes(ops)

    # The entry list: calls and returns by time (a call before a return at the
    # same instant, so touching ops count as concurrent), unknown returns last.
    entries: list[_Entry] = []
    for i, o in enumerate(ops):
        call = _Entry(o, 1 << i, True, o.invoke)
        ret = _Entry(o, 1 << i, False, o.response if o.status != UNKNOWN else math.inf)
        call.match = ret
        entries += [call, ret]
    entries.sort(key=lambda e: (e.time, 0 if e.is_call else 1))
    head = _Entry(Op(READ, key, -math.inf), 0, True, -math.inf)
    prev = head
    for e in entries:
        prev.next = e
        e.prev = prev
        prev = e

    no_candidates: tuple[Any, ...] = ()
    state: States = frozenset([initial])
    linearized = 0
    stack: list[tuple[_Entry, States]] = []
    cache: set[tuple[int, States]] = set()
    steps = 0
    best = -1
    result = KeyResult(key, False, ops, 0)

    entry = head.next
    while True:
        steps += 1
        if steps > max_steps:
            result.inconclusive = True
            break
        if entry is None or (not entry.is_call and math.isinf(entry.time)):
            # Every op with a known outcome is linearized; unknown ones left over never applied.
            result.ok = True
            result.linearization = [e.op for e, _ in stack]
            break
        if entry.is_call:
            nxt = _step(state, entry.op, candidates.get(entry.op.id, no_candidates))
            if nxt:
                bits = linearized | entry.bit
                memo = (bits, nxt)
                if memo not in cache:
                    cache.add(memo)
                    stack.append((entry, state))
                    state = nxt
                    linearized = bits
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        # A return: its op had to be linearized by now and is not.
        if len(stack) > best:
            best = len(stack)
            result.prefix = [e.op for e, _ in stack]
            result.prefix_state = state
            result.blocked = entry.op
            pending = []
            walk = head.next
            while walk is not None and walk is not entry:
                if walk.is_call:
                    pending.append(walk.op)
                walk = walk.next
            result.candidates = pending
        if not stack:
            break
        top, state = stack.pop()
        linearized &= ~top.bit
        _unlift(top)
        entry = top.next
    result.states_explored = steps
    return result


@dataclass
class CheckResult:
    ok: bool
    keys: dict[str, KeyResult]

    def report(self) -> str:
        t0 = min((o.invoke for r in self.keys.values() for o in r.ops), default=0.0)
        return "\n".join(r.report(t0) for r in self.keys.values())

    def failures(self) -> list[KeyResult]:
        return [r for r in self.keys.values() if not r.ok]


def check(
    ops: Iterable[Op], initial: dict[str, Register] | None = None, max_steps: int = 5_000_000
) -> CheckResult:
    """Check a whole history; each key is checked on its own."""
    ops = list(ops)
    fresh = itertools.count(max((o.id for o in ops), default=-1) + 1)
    by_key: dict[str, list[Op]] = defaultdict(list)
    for o in ops:
        if o.id < 0:  # hand-made ops get ids in history order
            o.id = next(fresh)
        by_key[o.key].append(o)
    initial = initial or {}
    results = {
        k: check_key(k, v, initial.get(k), max_steps=max_steps) for k, v in sorted(by_key.items())
    }
    return CheckResult(all(r.ok for r in results.values()), results)


def max_acknowledged_index(ops: Iterable[Op], key: str) -> int:
    """The highest index a successful CAS on `key` returned (0 if none)."""
    return max(
        (o.index or 0 for o in ops if o.key == key and o.kind == CAS and o.status == OK),
        default=0,
    )
