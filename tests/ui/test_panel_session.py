"""The panel renews its own session, in Debian's chromium against one server
whose JWTs live a few seconds (`[auth] jwt_ttl`, HEROCTL_AUTH_JWT_TTL).

Signed in, the panel calls `POST /v1/auth/refresh` by itself before the JWT
expires; past the first JWT's expiry its pages still work (a reloaded page
too, from the expiry it kept in localStorage, and two tabs sharing the cookie
never sign each other out), while that first JWT is refused by the API from
the moment it was replaced (a JWT refresh has no grace window: that is only
for a refresh token presented twice, api.security.refresh_grace). A refresh
the server refuses (the session logged out through the API) shows the
sign-in form, once, with no refresh after it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.api.authutil import anon, bearer
from tests.support.cluster import Cluster, Server, wait_until
from tests.ui.navigation import goto, reload
from tests.ui.test_panel import TIMEOUT, go, sign_in, unnamed_controls

PASSWORD = "panel-session-password-1"
JWT_TTL = 6  # seconds: the panel refreshes at half of it (the 5 s lead leaves less than 80 %)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("panel-session")
    env = {"HEROCTL_ADMIN_PASSWORD": PASSWORD, "HEROCTL_AUTH_JWT_TTL": str(JWT_TTL)}
    c = Cluster(root, 1, env=env).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("panel-session-screenshots")


@pytest.fixture
def context(browser: Any, server: Server) -> Iterator[Any]:
    ctx = browser.new_context(ignore_https_errors=True, base_url=server.url)
    ctx.set_default_timeout(TIMEOUT)
    try:
        yield ctx
    finally:
        ctx.close()


class Answers:
    """The answers a page got from the API (status, path, body of the auth
    ones), recorded as they come (page.on("response"))."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[tuple[int, str, Any]] = []
        self.times: list[float] = []
        page.on("response", self._record)

    def _record(self, r: Any) -> None:
        path = r.url.split("://", 1)[-1].partition("/")[2]
        if not path.startswith("v1/"):
            return
        body = None
        if path.startswith("v1/auth/"):
            try:
                body = r.json()
            except Exception:  # noqa: BLE001 - an answer without a JSON body
                body = None
        self.seen.append((r.status, "/" + path, body))
        self.times.append(time.time())

    def of(self, path: str) -> list[tuple[int, str, Any]]:
        return [a for a in self.seen if a[1].startswith(path)]

    def lost(self) -> list[tuple[int, str, Any]]:
        """The 401s not followed by a success of the same path: a request that
        went out with the cookie a refresh had just replaced gets 401 and the
        panel sends it once more with the new cookie."""
        return [
            a
            for i, a in enumerate(self.seen)
            if a[0] == 401 and not any(b[1] == a[1] and b[0] < 400 for b in self.seen[i + 1 :])
        ]

    def wait(self, fn: Callable[[], Any], timeout: float, message: str) -> Any:
        """Poll `fn` until true; each round trip to the browser delivers its events."""
        return wait_until(lambda: self.page.evaluate("true") and fn(), timeout, 0.1, message)


def _expiry(body: dict[str, Any]) -> float:
    return datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()


def _session_cookie(ctx: Any) -> str:
    return {c["name"]: c["value"] for c in ctx.cookies()}.get("heroctl_session", "")


def _signed_in(ctx: Any) -> tuple[Any, Answers, str, float]:
    """A new tab signed in: the page, its answers, the JWT from the login's
    cookie, and when that JWT expires (the login's `expires_at`)."""
    page = ctx.new_page()
    answers = Answers(page)
    sign_in(page, password=PASSWORD)
    logins = answers.wait(lambda: answers.of("/v1/auth/login"), 10, "the login's answer")
    login = logins[-1]
    assert login[0] == 200 and login[2]["cookie"] is True, login
    jwt = _session_cookie(ctx)
    assert jwt.count(".") == 2  # a JWT, in the HttpOnly cookie only
    return page, answers, jwt, _expiry(login[2])


def test_panel_renews_its_session(server: Server, context: Any, shots: Path) -> None:
    page, answers, first_jwt, first_expiry = _signed_in(context)
    refreshed = answers.wait(
        lambda: answers.of("/v1/auth/refresh"), JWT_TTL + 10, "the panel's own refresh"
    )
    status, _, body = refreshed[0]
    assert status == 200 and body["cookie"] is True and _expiry(body) > first_expiry, refreshed
    assert _session_cookie(context) not in ("", first_jwt)  # the browser took the new cookie
    stored = page.evaluate("JSON.parse(localStorage.getItem('heroctl.session'))")
    assert stored["expires"] > stored["refreshAt"] > time.time() * 1000 - 1000, stored
    # Replaced, the first JWT is refused at once, before its own expiry.
    assert time.time() < first_expiry
    assert anon(server, "GET", "/v1/jobs", headers=bearer(first_jwt)).status == 401

    wait_until(lambda: time.time() > first_expiry + 1, JWT_TTL + 5, message="the first JWT expired")
    go(page, "Nodes")
    page.get_by_role("heading", name="Nodes").wait_for()
    go(page, "Overview")
    page.get_by_role("button", name="Sign out").wait_for()
    assert page.get_by_role("button", name="Sign in").count() == 0
    # A page that reloads finds the session's expiry and keeps refreshing.
    before = len(answers.of("/v1/auth/refresh"))
    reload(page)
    page.get_by_role("button", name="Sign out").wait_for()
    answers.wait(
        lambda: len(answers.of("/v1/auth/refresh")) > before, JWT_TTL + 10, "a refresh after reload"
    )
    page.screenshot(path=str(shots / "renewed.png"), full_page=True)
    assert unnamed_controls(page) == []
    assert anon(server, "GET", "/v1/jobs", headers=bearer(first_jwt)).status == 401
    assert answers.lost() == [], answers.seen
    assert all(a[0] == 200 for a in answers.of("/v1/auth/refresh")), answers.of("/v1/auth/refresh")


def test_two_tabs_share_the_renewed_session(server: Server, context: Any) -> None:
    """Tabs share the cookie: whichever refreshes, the other sends the new
    cookie and is never signed out; no refresh is refused."""
    start = time.time()
    first, first_answers, _, expiry = _signed_in(context)
    second = context.new_page()
    second_answers = Answers(second)
    goto(second, "/ui/nodes")
    second.get_by_role("button", name="Sign out").wait_for()
    both = (first_answers, second_answers)

    def refreshes() -> list[tuple[int, str, Any]]:
        return first_answers.of("/v1/auth/refresh") + second_answers.of("/v1/auth/refresh")

    # Three JWT lifetimes: every one refreshed, by one tab or the other.
    end = expiry + 2 * JWT_TTL
    first_answers.wait(
        lambda: time.time() > end and len(refreshes()) >= 3, 4 * JWT_TTL, "3 refreshes"
    )
    due = (time.time() - start) / (JWT_TTL / 2)  # a refresh is due every half lifetime
    made = refreshes()
    for tab in (first, second):
        reload(tab)
        tab.get_by_role("button", name="Sign out").wait_for()
        assert tab.get_by_role("button", name="Sign in").count() == 0
    assert all(a[0] == 200 for a in refreshes()), refreshes()
    assert [a for answers in both for a in answers.lost()] == []
    # One refresh when due, not one per tab (the lock and the stored time).
    timeline = sorted(
        (round(t, 2), name, a[0], a[2] and a[2]["expires_at"])
        for name, answers in (("first", first_answers), ("second", second_answers))
        for t, a in zip(answers.times, answers.seen, strict=True)
        if a[1] == "/v1/auth/refresh"
    )
    assert len(made) <= due + 1, (due, timeline)
    gaps = [b[0] - a[0] for a, b in zip(timeline, timeline[1:], strict=False)]
    assert min(gaps) > 1.0, timeline  # never two tabs at once


def test_a_refused_refresh_shows_the_sign_in_form(server: Server, context: Any) -> None:
    page, answers, _, expiry = _signed_in(context)
    # The Events page reads once, then only streams: the refresh is the first
    # request to meet the ended session (a page's 15 s read would also show
    # the form, for its own 401).
    go(page, "Events")
    page.get_by_role("table", name="Events").wait_for()
    # Logged out through the API with the cookie's JWT (the current one: the
    # panel may have refreshed meanwhile, which would make this one refused).
    wait_until(
        lambda: anon(
            server, "POST", "/v1/auth/logout", {}, headers=bearer(_session_cookie(context))
        ).body.get("revoked"),
        10,
        message="the session logged out through the API",
    )
    page.get_by_role("button", name="Sign in").wait_for(timeout=(JWT_TTL + 10) * 1000)
    answers.wait(lambda: answers.of("/v1/auth/refresh"), 5, "the refused refresh's answer")
    statuses = [a[0] for a in answers.of("/v1/auth/refresh")]
    assert statuses and statuses[-1] == 401 and statuses.count(401) == 1, statuses
    # No loop: nothing more is tried once the form shows, past the JWT's expiry too.
    answers.wait(lambda: time.time() > expiry + JWT_TTL, 2 * JWT_TTL + 5, "the JWT's expiry")
    assert len(answers.of("/v1/auth/refresh")) == len(statuses), answers.of("/v1/auth/refresh")
    assert page.evaluate("localStorage.getItem('heroctl.session')") is None
