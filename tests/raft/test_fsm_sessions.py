"""FSM ops of sessions: rotation once, replays, expiry, revocation with their subject."""

from __future__ import annotations

from typing import Any

from raft.state import State
from tests.raft.test_fsm_acl import apply, boot, cmd, one, session


def test_sessions_rotate_once_and_die_with_their_subject() -> None:
    s = State()
    boot(s)
    tok = {"accessor_id": "acc-1", "secret_hash": "h1", "type": "management"}
    one(s, cmd("acl.token.create", token=tok))
    assert one(s, cmd("auth.session.create", session=session("s1", "token:acc-1")))["ok"]
    ghost = one(s, cmd("auth.session.create", session=session("s2", "token:nobody")))
    assert ghost["status"] == 401
    # rotate with the current jti
    r = one(s, cmd("auth.session.rotate", id="s1", expect_jti="j1", jti="j2", refresh_hash="rh-j2"))
    assert r["ok"] and s.table("acl_sessions")["s1"]["jti"] == "j2"
    stale = one(
        s, cmd("auth.session.rotate", id="s1", expect_jti="j1", jti="j3", refresh_hash="rh-j3")
    )
    assert stale["status"] == 401
    # rotate with the refresh token, then replay it: the session dies
    ok = one(
        s,
        cmd(
            "auth.session.rotate",
            id="s1",
            expect_refresh_hash="rh-j2",
            jti="j4",
            refresh_hash="rh-j4",
        ),
    )
    assert ok["ok"]
    replay = one(
        s,
        cmd(
            "auth.session.rotate",
            id="s1",
            expect_refresh_hash="rh-j2",
            jti="j5",
            refresh_hash="rh-j5",
        ),
    )
    assert replay["error"] == "invalid_refresh_token" and "s1" not in s.table("acl_sessions")
    # deleting the token deletes its sessions
    one(s, cmd("auth.session.create", session=session("s3", "token:acc-1")))
    gone = one(s, cmd("acl.token.delete", accessor_id="acc-1"))
    assert gone["ok"] and gone["sessions_revoked"] == 1
    assert "s3" not in s.table("acl_sessions") and "h1" not in s.table("acl_token_hashes")


def test_expired_sessions_are_pruned_and_refused() -> None:
    s = State()
    boot(s)
    one(s, cmd("auth.session.create", ts=1000, session=session("s1", "user:admin", expires=2000)))
    late = one(
        s, cmd("auth.session.rotate", ts=2500, id="s1", expect_jti="j1", jti="j2", refresh_hash="x")
    )
    assert late["status"] == 401 and "s1" not in s.table("acl_sessions")
    one(s, cmd("auth.session.create", ts=1000, session=session("s2", "user:admin", expires=2000)))
    one(s, cmd("auth.session.create", ts=3000, session=session("s3", "user:admin", expires=9000)))
    assert set(s.table("acl_sessions")) == {"s3"}
    assert one(s, cmd("auth.session.delete", id="s3"))["revoked"] is True
    assert one(s, cmd("auth.session.delete", id="s3"))["revoked"] is False


def test_sessions_per_subject_are_capped_oldest_first() -> None:
    s = State()
    boot(s)
    one(s, cmd("acl.token.create", token={"accessor_id": "acc-1", "secret_hash": "h1"}))
    for i in range(3):
        r = one(
            s, cmd("auth.session.create", max_sessions=3, session=session(f"a{i}", "user:admin"))
        )
        assert r["ok"] and r["sessions_ended"] == 0
    one(s, cmd("auth.session.create", max_sessions=3, session=session("t0", "token:acc-1")))
    # two logins in one raft entry share an index: the table's order breaks the tie
    both = apply(
        s,
        cmd("auth.session.create", max_sessions=3, session=session("a3", "user:admin")),
        cmd("auth.session.create", max_sessions=3, session=session("a4", "user:admin")),
    )
    assert [r["sessions_ended"] for r in both] == [1, 1]
    assert set(s.table("acl_sessions")) == {"a2", "a3", "a4", "t0"}  # another subject's kept
    # a restored snapshot ends the same ones next
    restored = State.from_bytes(s.to_bytes())
    for state in (s, restored):
        one(state, cmd("auth.session.create", max_sessions=2, session=session("a5", "user:admin")))
        assert set(state.table("acl_sessions")) == {"a4", "a5", "t0"}


def test_bad_session_commands_change_nothing() -> None:
    s = State()
    boot(s)
    one(s, cmd("auth.session.create", ts=1000, session=session("old", "user:admin", expires=2000)))
    before = dict(s.table("acl_sessions")), dict(s.table_index)
    for bad in (
        cmd("auth.session.create", ts=5000, max_sessions=0, session=session("x", "user:admin")),
        cmd("auth.session.create", ts=5000, max_sessions="3", session=session("x", "user:admin")),
        cmd("auth.session.create", ts=5000, max_sessions=True, session=session("x", "user:admin")),
        cmd("auth.session.create", ts=5000, session=session("x", "user:nobody")),
        cmd("auth.session.create", ts=5000, session={"id": "x"}),
    ):
        r = one(s, bad)
        assert not r["ok"] and r["status"] in (400, 401), r
    assert (dict(s.table("acl_sessions")), dict(s.table_index)) == before  # "old" not even pruned


SEALED = {"nonce": b"n" * 12, "ciphertext": b"sealed-rt-j2"}


def rotate(ts: int, presented: str, new: str, window: int | None = 5000, **field: Any) -> Any:
    """Rotate s1 presenting refresh hash `presented`, opening a grace window of `window` ms."""
    grace = {"ms": window, "issued_at": ts // 1000, "token_expires": ts // 1000 + 60}
    return cmd(
        "auth.session.rotate",
        ts=ts,
        id="s1",
        expect_refresh_hash=presented,
        jti=new,
        refresh_hash="rh-" + new,
        grace=None if window is None else {**grace, "sealed": SEALED, **field},
    )


def test_a_replaced_refresh_token_gets_the_same_pair_within_the_grace_window() -> None:
    s = State()
    boot(s)
    one(s, cmd("auth.session.create", session=session("s1", "user:admin", expires=10**9)))
    first = one(s, rotate(1000, "rh-j1", "j2"))
    assert first["ok"] and "grace" not in first
    row = dict(s.table("acl_sessions")["s1"])
    # a second client with the same token, on any server, 3 s later: the first one's pair
    second = one(s, rotate(4000, "rh-j1", "j3"))
    assert second["grace"] is True and second["jti"] == "j2" and second["sealed"] == SEALED
    assert (second["issued_at"], second["token_expires"]) == (1, 61)
    assert s.table("acl_sessions")["s1"] == row  # nothing changed
    # the new token rotates on as usual; the window belongs to the last swap only
    assert one(s, rotate(5000, "rh-j2", "j4", window=100))["ok"]
    assert one(s, rotate(5050, "rh-j2", "j5"))["jti"] == "j4"
    replay = one(s, rotate(5100, "rh-j2", "j6"))  # the window (100 ms) has closed
    assert replay["error"] == "invalid_refresh_token" and "s1" not in s.table("acl_sessions")


def test_no_grace_without_a_window_and_malformed_grace_changes_nothing() -> None:
    s = State()
    boot(s)
    one(s, cmd("auth.session.create", session=session("s1", "user:admin", expires=10**9)))
    assert one(s, rotate(1000, "rh-j1", "j2", window=None))[
        "ok"
    ]  # grace off ([auth] refresh_grace 0)
    assert s.table("acl_sessions")["s1"]["grace"] is None
    before = dict(s.table("acl_sessions"))
    for bad in (
        {"ms": -1},
        {"ms": "5000"},
        {"issued_at": None},
        {"sealed": {"nonce": "n", "ciphertext": b"c"}},
        {"sealed": "plaintext"},
    ):
        r = one(s, rotate(2000, "rh-j2", "j3", **bad))
        assert r["status"] == 400 and r["error"] == "invalid_command", (bad, r)
    assert dict(s.table("acl_sessions")) == before
    replay = one(s, rotate(2000, "rh-j1", "j3"))  # no window was opened: a replay at once
    assert replay["error"] == "invalid_refresh_token" and "s1" not in s.table("acl_sessions")
