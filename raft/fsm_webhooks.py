"""FSM operations on webhooks and their delivery progress.

A webhook is `{id, url, events, secret}` where the secret arrives sealed
(AES-256-GCM under a key derived from the cluster key, by the server that took
the request): the log and the snapshots never hold it in clear.

Delivery runs on the leader (heroctld.controllers.webhooks) and replicates its
progress here, so a new leader resumes where the old one stopped: per webhook
a `cursor` (the last event seq that is done: delivered, given up or skipped),
the `pending` retry of the event after it (attempts, first attempt, next
attempt), a bounded `history` of attempts, and a `redeliver` queue that the
API fills. The cursor only moves forward, so a late write from a deposed
leader cannot move it back.
"""

from __future__ import annotations

import re
from typing import Any

from raft.changes import Changes
from raft.commands import timestamp
from raft.fsm_events import EVENTS, first_seq, last_seq, unknown_topics
from raft.fsm_results import fail, ok
from raft.state import State

WEBHOOKS = "webhooks"
DELIVERIES = "deliveries"
ID_RE = re.compile(r"^wh_[0-9a-f]{8,32}$")
MAX_WEBHOOKS = 256
MAX_URL = 2048
MAX_HISTORY = 200  # attempts kept per webhook
MAX_REDELIVER = 100
ATTEMPT_STATUSES = ("delivered", "failed", "gave_up", "missed")


def delivery_id(webhook_id: str, seq: int) -> str:
    """Stable across retries of one event to one webhook."""
    return f"{webhook_id}-{seq}"


def parse_delivery_id(webhook_id: str, delivery: str) -> int | None:
    prefix = webhook_id + "-"
    if not delivery.startswith(prefix):
        return None
    tail = delivery[len(prefix) :]
    return int(tail) if tail.isdigit() and len(tail) < 19 else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def webhook_create(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    wid, url, events, secret = cmd.get("id"), cmd.get("url"), cmd.get("events"), cmd.get("secret")
    if not isinstance(wid, str) or not ID_RE.fullmatch(wid):
        return fail(400, "invalid_command", "a webhook id looks like wh_<hex>")
    if (
        not isinstance(url, str)
        or not url.startswith(("http://", "https://"))
        or len(url) > MAX_URL
    ):
        return fail(400, "invalid_url", "url must be an http or https URL")
    if not (isinstance(events, list) and events and all(isinstance(e, str) for e in events)):
        return fail(400, "invalid_events", "events must be a non-empty list of event types")
    if unknown_topics(events):
        return fail(400, "invalid_events", f"unknown events: {', '.join(unknown_topics(events))}")
    if not (
        isinstance(secret, dict)
        and isinstance(secret.get("nonce"), bytes)
        and isinstance(secret.get("ciphertext"), bytes)
    ):
        return fail(400, "invalid_command", "the secret must arrive sealed (nonce, ciphertext)")
    table = state.table(WEBHOOKS)
    if wid in table:
        return fail(409, "webhook_exists", f"webhook '{wid}' already exists")
    if len(table) >= MAX_WEBHOOKS:
        return fail(409, "too_many_webhooks", f"a cluster has at most {MAX_WEBHOOKS} webhooks")
    ts = timestamp(cmd)
    doc = {
        "id": wid,
        "url": url,
        "events": list(events),
        "secret": {"nonce": secret["nonce"], "ciphertext": secret["ciphertext"]},
        "create_index": index,
        "create_time": ts,
        "modify_index": index,
    }
    table[wid] = doc
    # Only events after the webhook exists are delivered.
    state.table(DELIVERIES)[wid] = {
        "cursor": last_seq(state),
        "pending": None,
        "history": [],
        "redeliver": [],
        "delivered": 0,
        "failed": 0,
        "modify_index": index,
    }
    state.touch(WEBHOOKS, index)
    state.touch(DELIVERIES, index)
    return ok(webhook=describe(doc))


def webhook_delete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    wid = cmd.get("id")
    table = state.table(WEBHOOKS)
    if not isinstance(wid, str) or wid not in table:
        return fail(404, "webhook_not_found", f"webhook '{wid}' does not exist")
    del table[wid]
    state.table(DELIVERIES).pop(wid, None)
    state.touch(WEBHOOKS, index)
    state.touch(DELIVERIES, index)
    return ok(id=wid)


def _attempt(raw: Any) -> dict[str, Any] | None:
    """One attempt record, reduced to known fields of known types."""
    if not isinstance(raw, dict) or raw.get("status") not in ATTEMPT_STATUSES:
        return None
    out: dict[str, Any] = {"status": raw["status"]}
    for key in ("delivery", "event", "error"):
        value = raw.get(key)
        out[key] = value[:500] if isinstance(value, str) else None
    for key in ("seq", "index", "attempt", "code", "ts", "duration_ms"):
        out[key] = _int(raw.get(key))
    out["redelivery"] = bool(raw.get("redelivery"))
    return out


def webhook_progress(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """What the leader's deliverer did: attempts, the new cursor, the retry state."""
    wid = cmd.get("id")
    rows = state.table(DELIVERIES)
    row = rows.get(wid) if isinstance(wid, str) else None
    if row is None:
        return fail(404, "webhook_not_found", f"webhook '{wid}' does not exist")
    new = dict(row)
    cursor = _int(cmd.get("cursor"))
    if cursor is not None and cursor > row["cursor"]:
        new["cursor"] = min(cursor, last_seq(state))
    attempts = [a for a in (_attempt(x) for x in cmd.get("attempts") or []) if a is not None]
    if attempts:
        new["history"] = [*row["history"], *attempts][-MAX_HISTORY:]
        new["delivered"] = row["delivered"] + sum(a["status"] == "delivered" for a in attempts)
        new["failed"] = row["failed"] + sum(a["status"] != "delivered" for a in attempts)
    if "pending" in cmd:
        pending = cmd["pending"]
        if isinstance(pending, dict) and (_int(pending.get("seq")) or 0) > new["cursor"]:
            new["pending"] = {
                "seq": pending["seq"],
                "delivery": str(pending.get("delivery") or ""),
                "attempts": _int(pending.get("attempts")) or 0,
                "first_attempt": _int(pending.get("first_attempt")) or 0,
                "next_attempt": _int(pending.get("next_attempt")) or 0,
                "last_error": str(pending.get("last_error") or "")[:500],
            }
        else:
            new["pending"] = None
    if new["pending"] is not None and new["pending"]["seq"] <= new["cursor"]:
        new["pending"] = None
    done = cmd.get("redelivered") or []
    if done:
        new["redeliver"] = [r for r in row["redeliver"] if r["delivery"] not in done]
    if new != row:
        new["modify_index"] = index
        rows[wid] = new
        state.touch(DELIVERIES, index)
    return ok(cursor=new["cursor"])


def webhook_redeliver(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Queue one past delivery again (the deliverer sends it once more)."""
    wid, delivery = cmd.get("id"), cmd.get("delivery")
    row = state.table(DELIVERIES).get(wid) if isinstance(wid, str) else None
    if row is None:
        return fail(404, "webhook_not_found", f"webhook '{wid}' does not exist")
    seq = parse_delivery_id(wid, delivery) if isinstance(delivery, str) else None  # type: ignore[arg-type]
    if seq is None:
        return fail(404, "delivery_not_found", f"no delivery '{delivery}' for webhook '{wid}'")
    if seq > row["cursor"]:
        return fail(409, "delivery_pending", f"delivery '{delivery}' has not finished yet")
    if seq < first_seq(state) or seq not in state.table(EVENTS):
        return fail(410, "event_expired", f"the event of '{delivery}' is no longer kept")
    if any(r["delivery"] == delivery for r in row["redeliver"]):
        return ok(queued=False)
    if len(row["redeliver"]) >= MAX_REDELIVER:
        return fail(409, "too_many_redeliveries", "wait for queued redeliveries to finish")
    rows = state.table(DELIVERIES)
    rows[wid] = dict(
        row,
        redeliver=[
            *row["redeliver"],
            {"delivery": delivery, "seq": seq, "requested": timestamp(cmd)},
        ],
        modify_index=index,
    )
    state.touch(DELIVERIES, index)
    return ok(queued=True)


def describe(doc: dict[str, Any]) -> dict[str, Any]:
    """A webhook as the API shows it: never its secret."""
    return {k: v for k, v in doc.items() if k != "secret"}
