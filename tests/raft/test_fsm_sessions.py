"""FSM ops of sessions: rotation once, replays, expiry, revocation with their subject."""

from __future__ import annotations

from raft.state import State
from tests.raft.test_fsm_acl import boot, cmd, one, session


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
