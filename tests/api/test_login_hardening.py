"""Logins and sessions under pressure, against a real 3-server cluster: a burst of
concurrent guesses, the cap on sessions per identity, parallel refreshes of one
session and a replay after the grace window."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.api.authutil import anon, as_, assert_error, login
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import Reply

T = TypeVar("T")
MAX_PER_USER = 5  # SecuritySettings.login_max_per_user
MAX_SESSIONS = 4
GRACE = 2.0  # seconds ([auth] refresh_grace); short, so the replay test need not wait 10 s
WHOAMI = "/v1/acl/tokens/self"  # any live identity may read it


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("hardening")
    env = {"HEROCTL_AUTH_MAX_SESSIONS": str(MAX_SESSIONS), "HEROCTL_AUTH_REFRESH_GRACE": str(GRACE)}
    c = Cluster(root, 3, env=env).start()
    try:
        yield c
    finally:
        c.stop()


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call on its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def add_user(server: Server, name: str, password: str) -> None:
    r = server.post("/v1/acl/users", {"username": name, "password": password})
    assert r.status == 201, r.raw


def test_a_burst_of_guesses_gets_exactly_the_limit_to_the_password_check(
    cluster: Cluster,
) -> None:
    s = cluster.servers[0]
    add_user(s, "burst", "burst-password-1")
    guess = {"username": "burst", "password": "wrong-wrong-wrong"}
    replies: list[Reply] = at_once([lambda: anon(s, "POST", "/v1/auth/login", guess)] * 16)
    codes = Counter((r.status, r.body["error"]) for r in replies)
    assert codes == {
        (401, "invalid_credentials"): MAX_PER_USER,
        (429, "too_many_login_attempts"): 16 - MAX_PER_USER,
    }, codes
    # the right password is refused too while the user's budget is spent
    r = anon(s, "POST", "/v1/auth/login", {"username": "burst", "password": "burst-password-1"})
    assert r.status == 429 and int(r.header("Retry-After") or 0) > 0


def refused_everywhere(cluster: Cluster, token: str) -> None:
    """`token` gets 401 from every server once it applied what ended it."""
    for s in cluster.servers:
        wait_until(
            lambda s=s: as_(s, token, "GET", WHOAMI).status == 401,
            timeout=5.0,
            message=f"the end of the session to reach {s.name}",
        )


def test_sessions_per_identity_are_capped_oldest_first(cluster: Cluster) -> None:
    add_user(cluster.servers[0], "many", "many-password-1")
    logins = [
        login(cluster.servers[i % 3], username="many", password="many-password-1")
        for i in range(MAX_SESSIONS + 3)
    ]
    oldest, kept = logins[:3], logins[3:]
    for got in oldest:
        refused_everywhere(cluster, got["token"])
        r = anon(
            cluster.servers[1], "POST", "/v1/auth/refresh", {"refresh_token": got["refresh_token"]}
        )
        assert_error(r, 401)
    for got in kept:  # the newest MAX_SESSIONS still work everywhere
        for s in cluster.servers:
            assert as_(s, got["token"], "GET", WHOAMI).status == 200


def refresh(server: Server, refresh_token: str) -> Reply:
    return anon(server, "POST", "/v1/auth/refresh", {"refresh_token": refresh_token})


def test_parallel_refreshes_of_one_session_get_the_same_pair(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    add_user(a, "twins", "twins-password-1")
    got = login(a, username="twins", password="twins-password-1")
    replies = at_once(
        [lambda: refresh(a, got["refresh_token"]), lambda: refresh(b, got["refresh_token"])]
    )
    assert [r.status for r in replies] == [200, 200], [r.raw for r in replies]
    assert replies[0].body == replies[1].body  # one rotation, the same pair for both
    new = replies[0].body
    assert new["refresh_token"] != got["refresh_token"] and new["token"] != got["token"]
    for s in cluster.servers:  # the session lives on, with the new pair
        wait_until(lambda s=s: as_(s, new["token"], "GET", WHOAMI).status == 200, 5.0)
    assert refresh(c, new["refresh_token"]).status == 200


def test_a_replay_after_the_grace_window_ends_the_session(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    add_user(a, "replayed", "replayed-password-1")
    got = login(a, username="replayed", password="replayed-password-1")
    first = refresh(a, got["refresh_token"])
    assert first.status == 200, first.raw

    replays: list[Reply] = []

    def replay() -> Reply | None:
        replays.append(r := refresh(b, got["refresh_token"]))
        return r if r.status == 401 else None

    ended = wait_until(replay, GRACE + 10, 0.2, "the grace window to close")
    assert_error(ended, 401, "invalid_refresh_token")
    assert all(r.body == first.body for r in replays[:-1])  # in the window: the same pair
    refused_everywhere(cluster, first.body["token"])  # the whole session ended
    assert_error(refresh(c, first.body["refresh_token"]), 401)
