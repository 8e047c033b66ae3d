"""The WGL checker on small hand-made histories (fast; no cluster)."""

from __future__ import annotations

import math
import random
import time

import pytest

from tests.support.linearizability import (
    CAS,
    CONFLICT,
    OK,
    READ,
    UNKNOWN,
    History,
    Op,
    cas,
    check,
    max_acknowledged_index,
    read,
)

K = "job-a"


def assert_linearizable(ops: list[Op]) -> None:
    result = check(ops)
    assert result.ok, result.report()


def assert_not_linearizable(ops: list[Op]) -> str:
    result = check(ops)
    assert not result.ok
    assert not any(r.inconclusive for r in result.keys.values())
    return result.report()


# --- linearizable ----------------------------------------------------------------


def test_sequential_history() -> None:
    assert_linearizable(
        [
            read(K, 0, 1, None),
            cas(K, 0, "a", 2, 3, OK, 5),
            read(K, 4, 5, (5, "a")),
            cas(K, 0, "x", 6, 7, CONFLICT),
            cas(K, 5, "b", 8, 9, OK, 7),
            cas(K, 5, "y", 10, 11, CONFLICT),
            read(K, 12, 13, (7, "b")),
        ]
    )


def test_read_concurrent_with_write_may_see_either_side() -> None:
    w = cas(K, 0, "a", 0, 10, OK, 5)
    assert_linearizable([w, read(K, 1, 2, None), read(K, 3, 4, (5, "a"))])
    # ...but once a read saw the new value, a later read may not see the old one.
    report = assert_not_linearizable(
        [
            cas(K, 0, "a", 0, 10, OK, 5),
            read(K, 1, 2, (5, "a")),
            read(K, 3, 4, None),
        ]
    )
    assert "read('job-a') -> absent" in report


def test_concurrent_cas_from_same_index_one_wins() -> None:
    assert_linearizable(
        [
            cas(K, 0, "a", 0, 5, OK, 5),
            cas(K, 0, "b", 1, 6, CONFLICT),
            read(K, 7, 8, (5, "a")),
        ]
    )


def test_independent_keys_are_checked_separately() -> None:
    result = check(
        [
            cas("x", 0, "a", 0, 1, OK, 3),
            cas("y", 0, "b", 0, 1, OK, 3),  # the same raft index on another key is fine
            read("x", 2, 3, (3, "a")),
            read("y", 2, 3, (3, "b")),
        ]
    )
    assert result.ok, result.report()
    assert set(result.keys) == {"x", "y"}


# --- not linearizable --------------------------------------------------------------


def test_stale_read_after_acknowledged_write() -> None:
    report = assert_not_linearizable(
        [
            cas(K, 0, "a", 0, 1, OK, 5),
            cas(K, 5, "b", 2, 3, OK, 9, client="c1"),
            read(K, 4, 5, (5, "a"), client="c2"),
        ]
    )
    assert "NOT linearizable" in report
    # The counterexample names the offending read and the register it contradicts.
    assert "c2 read('job-a') -> (index=5, value='a')" in report
    assert "register after it: (index=9, value='b')" in report


def test_lost_acknowledged_write() -> None:
    ops = [
        cas(K, 0, "a", 0, 1, OK, 5),
        cas(K, 5, "b", 2, 3, OK, 7),
        read(K, 10, 11, (5, "a")),  # the final read lost "b"
    ]
    assert_not_linearizable(ops)
    assert max_acknowledged_index(ops, K) == 7


def test_write_lost_entirely_reads_absent() -> None:
    assert_not_linearizable([cas(K, 0, "a", 0, 1, OK, 5), read(K, 2, 3, None)])


def test_two_successful_cas_from_the_same_expected_index() -> None:
    report = assert_not_linearizable(
        [
            cas(K, 0, "a", 0, 10, OK, 5),
            cas(K, 0, "b", 1, 11, OK, 6),
        ]
    )
    assert "cas('job-a', expected=0" in report


def test_conflict_although_the_expected_index_is_current() -> None:
    assert_not_linearizable(
        [
            cas(K, 0, "a", 0, 1, OK, 5),
            cas(K, 5, "b", 2, 3, CONFLICT),  # nothing else wrote: must have succeeded
        ]
    )


def test_index_going_backwards() -> None:
    assert_not_linearizable([cas(K, 0, "a", 0, 1, OK, 5), cas(K, 5, "b", 2, 3, OK, 4)])


def test_read_of_a_value_nobody_wrote() -> None:
    assert_not_linearizable([read(K, 0, 1, (3, "ghost"))])


def test_only_the_bad_key_fails() -> None:
    result = check(
        [
            cas("good", 0, "a", 0, 1, OK, 3),
            read("good", 2, 3, (3, "a")),
            cas("bad", 0, "b", 0, 1, OK, 4),
            read("bad", 2, 3, None),
        ]
    )
    assert not result.ok
    assert [r.key for r in result.failures()] == ["bad"]
    assert "key 'good'" in result.report() and "key 'bad'" in result.report()


# --- unknown outcomes ----------------------------------------------------------------


def test_unknown_write_may_apply_later() -> None:
    u = cas(K, 0, "a", 0)  # timed out: unknown, response +inf
    assert u.status == UNKNOWN and math.isinf(u.response)
    assert_linearizable([u, read(K, 5, 6, None), read(K, 20, 21, (8, "a"))])


def test_unknown_write_may_never_apply() -> None:
    assert_linearizable([cas(K, 0, "a", 0), read(K, 5, 6, None), cas(K, 0, "b", 7, 8, OK, 9)])


def test_unknown_write_once_seen_stays() -> None:
    assert_not_linearizable([cas(K, 0, "a", 0), read(K, 5, 6, (8, "a")), read(K, 7, 8, None)])


def test_unknown_write_cannot_take_effect_before_its_invocation() -> None:
    assert_not_linearizable([read(K, 0, 1, (4, "a")), cas(K, 0, "a", 2)])


def test_unknown_write_that_was_never_read_explains_a_conflict() -> None:
    # Nothing else wrote, so the conflict means the unknown write applied...
    assert_linearizable([cas(K, 0, "a", 0), cas(K, 0, "b", 5, 6, CONFLICT)])
    # ...which a later read of "absent" contradicts.
    assert_not_linearizable(
        [cas(K, 0, "a", 0), cas(K, 0, "b", 5, 6, CONFLICT), read(K, 7, 8, None)]
    )


def test_unknown_write_then_success_from_its_read_back_index() -> None:
    assert_linearizable(
        [
            cas(K, 0, "a", 0),
            read(K, 2, 3, (4, "a")),
            cas(K, 4, "b", 5, 6, OK, 7),
            read(K, 8, 9, (7, "b")),
        ]
    )


def test_unknown_write_applied_twice_is_caught() -> None:
    # One request seen at two indexes: a retry applied twice (no idempotency).
    assert_not_linearizable(
        [
            cas(K, 0, "a", 0),
            read(K, 2, 3, (4, "a")),
            cas(K, 4, "b", 5, 6, OK, 7),
            read(K, 8, 9, (9, "a")),
        ]
    )


def test_unknown_reads_are_ignored() -> None:
    unknown_read = Op(READ, K, 0.5)
    assert_linearizable([cas(K, 0, "a", 0, 1, OK, 5), unknown_read, read(K, 2, 3, (5, "a"))])


def test_values_must_be_unique_per_key() -> None:
    with pytest.raises(ValueError, match="written twice"):
        check([cas(K, 0, "a", 0, 1, OK, 3), cas(K, 3, "a", 2, 3, OK, 4)])


# --- the recorder ----------------------------------------------------------------------


def test_history_records_times_and_outcomes() -> None:
    clock = iter(range(100))
    h = History(clock=lambda: float(next(clock)))
    w = h.invoke("c1", CAS, K, expected=0, value="a")
    r = h.invoke("c2", READ, K)
    h.cas_ok(w, 5)
    h.read_ok(r, 5, "a")
    lost = h.invoke("c1", CAS, K, expected=5, value="b")
    h.unknown(lost)
    gone = h.invoke("c2", CAS, K, expected=5, value="c")
    h.discard(gone)
    ops = h.ops
    assert [o.id for o in ops] == [0, 1, 2]
    assert (w.invoke, w.response, w.status, w.index) == (0.0, 2.0, OK, 5)
    assert (r.invoke, r.response, r.value) == (1.0, 3.0, "a")
    assert lost.status == UNKNOWN and math.isinf(lost.response)
    assert check(ops).ok


# --- random histories ---------------------------------------------------------------------


def random_history(seed: int, n: int = 400, clients: int = 5) -> list[Op]:
    """A linearizable history: ops take effect at points 0, 1, 2, ... inside their windows."""
    rng = random.Random(seed)
    state: tuple[int, str] | None = None
    index = 0
    last_seen = dict.fromkeys(range(clients), 0)
    published = {0}
    per_client: dict[int, list[tuple[int, Op]]] = {c: [] for c in range(clients)}
    for point in range(n):
        c = rng.randrange(clients)
        cur = 0 if state is None else state[0]
        if rng.random() < 0.4:
            op = read(K, 0, 0, state, client=f"c{c}")
            last_seen[c] = cur
            published.add(cur)
        else:
            # Clients only know indexes they were told (a read or their own write).
            fresh = cur in published and rng.random() < 0.6
            expected = cur if fresh else last_seen[c]
            value = f"v{point}"
            fate = rng.random()
            if fate < 0.1:  # unknown, and it applied (or not) at this point
                op = cas(K, expected, value, 0, client=f"c{c}")
                if expected == cur and fate < 0.05:
                    index += rng.randint(1, 3)
                    state = (index, value)
            elif expected == cur:
                index += rng.randint(1, 3)
                state = (index, value)
                op = cas(K, expected, value, 0, 0, OK, index, client=f"c{c}")
                last_seen[c] = index
                published.add(index)
            else:
                op = cas(K, expected, value, 0, 0, CONFLICT, client=f"c{c}")
        per_client[c].append((point, op))
    ops: list[Op] = []
    for items in per_client.values():
        free = -1.0  # when this client is free to invoke again
        for j, (point, op) in enumerate(items):
            nxt = items[j + 1][0] if j + 1 < len(items) else point + 5
            op.invoke = rng.uniform(max(free, point - 3), point)
            end = rng.uniform(point, min(point + 3, nxt))
            free = end
            op.response = end if op.status != UNKNOWN else math.inf
            ops.append(op)
    return ops


@pytest.mark.parametrize("seed", range(8))
def test_random_linearizable_histories_pass(seed: int) -> None:
    ops = random_history(seed)
    started = time.monotonic()
    result = check(ops)
    assert result.ok, result.report()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("seed", range(8))
def test_random_histories_with_a_stale_read_fail(seed: int) -> None:
    ops = random_history(seed)
    writes = sorted(
        (o for o in ops if o.kind == CAS and o.status == OK), key=lambda o: o.index or 0
    )
    # A read that began after write k+1 finished, made to return write k instead.
    for older, newer in zip(writes, writes[1:], strict=False):
        later = [o for o in ops if o.kind == READ and o.status == OK and o.invoke > newer.response]
        if later:
            victim = later[0]
            victim.index, victim.value = older.index, older.value
            break
    else:
        pytest.skip("no stale read to plant")
    assert_not_linearizable(ops)
