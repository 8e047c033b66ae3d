"""Webhooks in the FSM: sealed secrets, a cursor that only moves forward, redeliveries."""

from __future__ import annotations

from typing import Any

import pytest

from domain import webhook_signing as wd
from raft.fsm import apply_batch
from raft.fsm_events import last_seq
from raft.fsm_webhooks import MAX_HISTORY, delivery_id, parse_delivery_id
from raft.keys import generate_cluster_key
from raft.state import State

SEALED = {"nonce": b"n" * 12, "ciphertext": b"sealed-secret"}
WID = "wh_0123456789abcdef"


class Log:
    def __init__(self) -> None:
        self.state = State()
        self.index = 1

    def apply(self, op: str, **fields: Any) -> dict[str, Any]:
        self.index += 1
        return apply_batch(self.state, [{"op": op, "ts": 5000, **fields}], self.index)[0]

    def secret_event(self, v: int) -> None:
        self.apply("secret.put", name="s", version=v, key_id="k1", nonce=b"n" * 12, ciphertext=b"c")

    @property
    def row(self) -> dict[str, Any]:
        return self.state.table("deliveries")[WID]


def _with_hook() -> Log:
    log = Log()
    log.secret_event(1)  # before the webhook: never delivered to it
    created = log.apply(
        "webhook.create", id=WID, url="https://example.test/h", events=["secret"], secret=SEALED
    )
    assert created["ok"], created
    assert "secret" not in created["webhook"]
    return log


def test_create_starts_after_existing_events_and_validates() -> None:
    log = _with_hook()
    assert log.row["cursor"] == 1 == last_seq(log.state)
    assert log.state.table("webhooks")[WID]["secret"] == SEALED
    bad = [
        {"id": "nope"},
        {"url": "ftp://x"},
        {"events": []},
        {"events": ["job.exploded"]},
        {"secret": "clear text"},
    ]
    for fields in bad:
        base = {
            "id": "wh_00000000000000ff",
            "url": "http://x/",
            "events": ["job"],
            "secret": SEALED,
        }
        result = log.apply("webhook.create", **{**base, **fields})
        assert not result["ok"] and result["status"] == 400, fields
    again = log.apply("webhook.create", id=WID, url="http://x/", events=["*"], secret=SEALED)
    assert again["status"] == 409


def test_progress_cursor_only_moves_forward_and_history_is_bounded() -> None:
    log = _with_hook()
    for v in range(2, 6):
        log.secret_event(v)
    attempt = {
        "status": "delivered",
        "delivery": delivery_id(WID, 3),
        "seq": 3,
        "code": 200,
        "ts": 1,
    }
    log.apply("webhook.progress", id=WID, cursor=3, attempts=[attempt])
    assert log.row["cursor"] == 3 and log.row["delivered"] == 1
    log.apply("webhook.progress", id=WID, cursor=2)  # a deposed leader, late
    assert log.row["cursor"] == 3
    log.apply("webhook.progress", id=WID, cursor=10**9)  # never past the ring's end
    assert log.row["cursor"] == last_seq(log.state)
    junk = [{"status": "failed", "seq": i, "error": "x" * 2000} for i in range(MAX_HISTORY + 20)]
    log.apply("webhook.progress", id=WID, attempts=[*junk, {"status": "weird"}, "no"])
    assert len(log.row["history"]) == MAX_HISTORY
    assert len(log.row["history"][-1]["error"]) == 500
    assert log.row["failed"] == MAX_HISTORY + 20


def test_pending_retry_is_replicated_and_cleared_by_the_cursor() -> None:
    log = _with_hook()
    log.secret_event(2)
    pending = {
        "seq": 2,
        "delivery": delivery_id(WID, 2),
        "attempts": 3,
        "first_attempt": 100,
        "next_attempt": 900,
        "last_error": "HTTP 500",
    }
    log.apply("webhook.progress", id=WID, pending=pending)
    assert log.row["pending"]["attempts"] == 3
    log.apply("webhook.progress", id=WID, cursor=2)
    assert log.row["pending"] is None
    stale = dict(pending, seq=1)
    log.apply("webhook.progress", id=WID, pending=stale)  # at or before the cursor: ignored
    assert log.row["pending"] is None


def test_redeliver_queue() -> None:
    log = _with_hook()
    log.secret_event(2)
    did = delivery_id(WID, 2)
    assert parse_delivery_id(WID, did) == 2
    assert parse_delivery_id(WID, "wh_other-2") is None
    assert log.apply("webhook.redeliver", id=WID, delivery=did)["status"] == 409  # not done yet
    log.apply("webhook.progress", id=WID, cursor=2)
    assert log.apply("webhook.redeliver", id=WID, delivery=did)["queued"] is True
    assert log.apply("webhook.redeliver", id=WID, delivery=did)["queued"] is False
    assert [r["delivery"] for r in log.row["redeliver"]] == [did]
    assert log.apply("webhook.redeliver", id=WID, delivery=f"{WID}-x")["status"] == 404
    assert log.apply("webhook.redeliver", id="wh_00", delivery=did)["status"] == 404
    log.apply("webhook.progress", id=WID, redelivered=[did])
    assert log.row["redeliver"] == []


def test_delete_forgets_progress() -> None:
    log = _with_hook()
    assert log.apply("webhook.delete", id=WID)["ok"]
    assert WID not in log.state.table("deliveries")
    assert log.apply("webhook.delete", id=WID)["status"] == 404
    assert log.apply("webhook.progress", id=WID, cursor=1)["status"] == 404


def test_sealed_secret_signature_body_and_backoff() -> None:
    key = generate_cluster_key()
    box = wd.WebhookSecrets(key)
    sealed = box.seal(WID, "whk_a1b2c3")
    assert b"whk_a1b2c3" not in sealed["ciphertext"]
    assert box.open(WID, sealed) == b"whk_a1b2c3"
    with pytest.raises(wd.SecretError):
        box.open("wh_ffffffffffffffff", sealed)  # bound to its webhook
    with pytest.raises(wd.SecretError):
        wd.WebhookSecrets(generate_cluster_key()).open(WID, sealed)
    event = {
        "seq": 7,
        "index": 42,
        "type": "job.deployed",
        "ts": 1_700_000_000_123,
        "data": {"job": "web"},
    }
    did, raw = wd.body(WID, event)
    assert did == f"{WID}-7" and wd.body(WID, event) == (did, raw)  # same bytes on a retry
    assert b'"timestamp":"2023-11-14T22:13:20.123Z"' in raw and b'"index":42' in raw
    headers = wd.headers(b"whk_a1b2c3", raw, did, "job.deployed", 1_700_000_100.5)
    assert wd.verify(b"whk_a1b2c3", raw, headers["X-HeroCtl-Signature"])
    assert not wd.verify(b"other", raw, headers["X-HeroCtl-Signature"])
    assert not wd.verify(b"whk_a1b2c3", raw + b" ", headers["X-HeroCtl-Signature"])
    assert headers["X-HeroCtl-Delivery"] == did and headers["X-HeroCtl-Timestamp"] == "1700000100"
    assert [wd.backoff(n) for n in (1, 2, 3, 9, 10, 100)] == [1, 2, 4, 256, 300, 300]
    assert not wd.gives_up(0, 24 * 3600 * 1000 - 1) and wd.gives_up(0, 24 * 3600 * 1000)
