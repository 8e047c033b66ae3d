"""Access control against a real 3-server cluster: 401/403 paths, JWTs, refresh,
logout, revocation everywhere, a scoped token, ACL objects."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.authutil import (
    anon,
    as_,
    assert_error,
    b64,
    bearer,
    cookie_login,
    jwt_join,
    jwt_parts,
    login,
    make_token,
    put_policy,
)
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import Reply

ADMIN_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("auth")
    c = Cluster(root, 3, env={"HEROCTL_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()
    try:
        assert c.leader().post("/v1/jobs", {"name": "web", "image": "busybox"}).status == 201
        yield c
    finally:
        c.stop()


@pytest.fixture
def s1(cluster: Cluster) -> Server:
    return cluster.servers[0]


PROTECTED = [
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/web"),
    ("POST", "/v1/jobs"),
    ("DELETE", "/v1/jobs/web"),
    ("GET", "/v1/cluster/status"),
    ("GET", "/v1/cluster/peers"),
    ("POST", "/v1/raft/transfer-leadership"),
    ("GET", "/v1/acl/tokens"),
    ("GET", "/v1/acl/tokens/self"),
    ("POST", "/v1/acl/policies"),
    ("GET", "/v1/acl/users"),
    ("GET", "/v1/secrets"),
    ("GET", "/v1/secrets/x"),
    ("POST", "/v1/secrets"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/operator/keyring"),
    ("POST", "/v1/operator/keyring/rotate"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401(s1: Server, method: str, path: str) -> None:
    assert_error(anon(s1, method, path, {} if method == "POST" else None), 401, "missing_token")


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWRtaW46YWRtaW4xMjM=",
        "Bearer",
        "Bearer ",
        "bearer ht_nope",
        "Token abc",
        "Bearer ht_" + "x" * 43,
        "Bearer eyJhbGciOi.e30.sig",
        "Bearer hs_server.1.abc",
        "Bearer " + "a" * 5000,
    ],
)
def test_bad_credentials_are_401(s1: Server, header: str) -> None:
    r = anon(s1, "GET", "/v1/jobs", headers={"Authorization": header})
    assert_error(r, 401)


def test_health_needs_no_token(s1: Server) -> None:
    assert anon(s1, "GET", "/v1/health/live").status == 200
    assert anon(s1, "GET", "/v1/health/ready").status == 200


def test_no_default_password(s1: Server) -> None:
    r = anon(s1, "POST", "/v1/auth/login", {"username": "admin", "password": "admin123"})
    assert_error(r, 401, "invalid_credentials")


def test_password_login_gives_a_jwt_every_server_accepts(cluster: Cluster) -> None:
    got = login(cluster.servers[1], username="admin", password=ADMIN_PASSWORD)
    assert got["refresh_token"].startswith("rt_")
    expires = time.mktime(time.strptime(got["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 23.9 * 3600 < expires - time.time() <= 24 * 3600 + 5
    header, claims, _ = jwt_parts(got["token"])
    assert header["alg"] == "HS256" and claims["sub"] == "user:admin"
    for s in cluster.servers:
        r = as_(s, got["token"], "GET", "/v1/jobs/web")
        assert r.status == 200, (s.name, r.raw)
        assert r.header("X-RateLimit-Limit") and r.header("X-RateLimit-Remaining")
        assert r.header("X-RateLimit-Reset")
        me = as_(s, got["token"], "GET", "/v1/acl/tokens/self").body
        assert me["username"] == "admin" and me["management"] is True


def test_forged_jwts_are_401(cluster: Cluster, s1: Server) -> None:
    token = login(s1, username="admin", password=ADMIN_PASSWORD)["token"]
    header, claims, sig = jwt_parts(token)

    def signing(h: dict, c: dict, key: bytes) -> str:
        unsigned = jwt_join(h, c, "").rsplit(".", 1)[0]
        return b64(hmac.new(key, unsigned.encode(), hashlib.sha256).digest())

    forgeries = {
        "alg none": jwt_join({"alg": "none", "typ": "JWT"}, claims, ""),
        "alg none, sig kept": jwt_join({"alg": "none", "typ": "JWT"}, claims, sig),
        "wrong key": jwt_join(header, claims, signing(header, claims, b"guess" * 8)),
        "altered sub": jwt_join(header, {**claims, "sub": "token:someone"}, sig),
        "altered exp": jwt_join(header, {**claims, "exp": claims["exp"] + 10**6}, sig),
        "altered alg": jwt_join({**header, "alg": "HS512"}, claims, sig),
        "truncated sig": token[:-4],
    }
    for s in cluster.servers:
        for what, forged in forgeries.items():
            r = as_(s, forged, "GET", "/v1/jobs")
            assert r.status == 401, (s.name, what, r.raw)
    assert as_(s1, token, "GET", "/v1/jobs").status == 200  # the genuine one still works


def revoked(server: Server, credential: str) -> Reply:
    """The 401 a revoked credential gets from `server`, once that server applied
    the revocation (the one that took the request has; others follow within
    the replication lag, as Nomad's ACL token deletion does)."""
    return wait_until(
        lambda: (r := as_(server, credential, "GET", "/v1/jobs")).status == 401 and r,
        timeout=5.0,
        message=f"the revocation to reach {server.name}",
    )


def test_refresh_and_logout_apply_on_every_server(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    first = login(a, username="admin", password=ADMIN_PASSWORD)
    # refresh with the JWT (on another server): a new pair; the old JWT is replaced
    r = anon(b, "POST", "/v1/auth/refresh", headers=bearer(first["token"]))
    assert r.status == 200, r.raw
    second = r.body
    assert second["token"] != first["token"] and second["refresh_token"] != first["refresh_token"]
    for s in cluster.servers:
        # a server applies the refresh within the replication lag (milliseconds)
        revoked(s, first["token"])
        assert as_(s, second["token"], "GET", "/v1/jobs").status == 200
    # refresh with the refresh token (as when the JWT expired): works once
    r = anon(c, "POST", "/v1/auth/refresh", {"refresh_token": second["refresh_token"]})
    assert r.status == 200, r.raw
    third = r.body
    # used again at once (a parallel client): the same pair, within the grace window
    # (a replay after it ends the session: tests/api/test_login_hardening.py)
    again = anon(a, "POST", "/v1/auth/refresh", {"refresh_token": second["refresh_token"]})
    assert again.status == 200 and again.body == third, again.raw
    # logout: the JWT and its refresh token die everywhere
    fourth = login(a, username="admin", password=ADMIN_PASSWORD)
    r = as_(b, fourth["token"], "POST", "/v1/auth/logout")
    assert r.status == 200 and r.body["revoked"] is True
    for s in cluster.servers:
        assert_error(revoked(s, fourth["token"]), 401, "invalid_token")
    again = anon(c, "POST", "/v1/auth/refresh", {"refresh_token": fourth["refresh_token"]})
    assert_error(again, 401)
    assert_error(anon(a, "POST", "/v1/auth/refresh", {"refresh_token": "rt_bad"}), 401)
    assert_error(anon(a, "POST", "/v1/auth/refresh"), 401, "missing_token")
    # an ACL token is not a session: it cannot be refreshed or logged out
    assert_error(anon(a, "POST", "/v1/auth/refresh", headers=bearer(a.token)), 400)
    assert_error(a.post("/v1/auth/logout"), 400, "not_a_session")


def test_scoped_token_lists_secret_names_only(cluster: Cluster) -> None:
    a, b, _ = cluster.servers
    assert a.post("/v1/secrets", {"name": "scoped_db", "value": "v-db"}).status in (200, 201)
    put_policy(a, "names-only", {"secrets": {"*": "list"}, "jobs": "read"})
    tok = make_token(a, ["names-only"])["secret_id"]
    for s in cluster.servers:
        listing = as_(s, tok, "GET", "/v1/secrets")
        assert listing.status == 200 and "scoped_db" in [x["name"] for x in listing.body]
        assert all("value" not in x for x in listing.body)
        assert_error(as_(s, tok, "GET", "/v1/secrets/scoped_db"), 403, "forbidden")
        assert_error(as_(s, tok, "GET", "/v1/secrets/scoped_db?version=1"), 403)
        assert as_(s, tok, "GET", "/v1/secrets/scoped_db/versions").status == 200
        assert_error(as_(s, tok, "POST", "/v1/secrets", {"name": "x", "value": "y"}), 403)
        assert_error(as_(s, tok, "DELETE", "/v1/secrets/scoped_db"), 403)
        assert_error(as_(s, tok, "POST", "/v1/jobs", {"name": "nope"}), 403, "forbidden")
        assert_error(as_(s, tok, "DELETE", "/v1/jobs/web"), 403)
        assert as_(s, tok, "GET", "/v1/jobs/web").status == 200
        assert_error(as_(s, tok, "GET", "/v1/cluster/status"), 403)
        assert_error(as_(s, tok, "POST", "/v1/raft/transfer-leadership", {}), 403)
        assert_error(as_(s, tok, "POST", "/v1/cluster/peers", {"raft_address": "1.2.3.4:5"}), 403)
        assert_error(as_(s, tok, "GET", "/v1/acl/tokens"), 403)
        assert_error(as_(s, tok, "POST", "/v1/acl/tokens", {"type": "management"}), 403)
        assert_error(as_(s, tok, "POST", "/v1/operator/keyring/rotate"), 403)
        assert_error(as_(s, tok, "GET", "/v1/operator/keyring"), 403)
        me = as_(s, tok, "GET", "/v1/acl/tokens/self")
        assert me.status == 200 and me.body["policies"] == ["names-only"]
        assert "secret_id" not in me.body and "secret_hash" not in me.body
    # the same token logged in as a JWT has the same rights
    jwt = login(b, acl_token=tok)["token"]
    assert as_(b, jwt, "GET", "/v1/secrets").status == 200
    assert_error(as_(b, jwt, "GET", "/v1/secrets/scoped_db"), 403)
    # per-name read on top
    put_policy(a, "names-only", {"secrets": {"*": "list", "scoped_*": "read"}, "jobs": "read"})
    r = as_(b, tok, "GET", "/v1/secrets/scoped_db")
    assert r.status == 200 and r.body["value"] == "v-db"


def test_deleting_a_token_or_user_kills_its_jwts_everywhere(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    put_policy(a, "jobs-read", {"jobs": "read"})
    made = make_token(a, ["jobs-read"])
    jwt = login(b, acl_token=made["secret_id"])["token"]
    assert as_(c, jwt, "GET", "/v1/jobs").status == 200
    assert b.delete(f"/v1/acl/tokens/{made['accessor_id']}").status == 200
    for s in cluster.servers:
        assert_error(revoked(s, jwt), 401)
        assert_error(revoked(s, made["secret_id"]), 401)
    r = a.post(
        "/v1/acl/users",
        {"username": "carol", "password": "carol-password-1", "policies": ["jobs-read"]},
    )
    assert r.status == 201 and "password_hash" not in r.body and r.body["has_password"]
    jwt = login(c, username="carol", password="carol-password-1")["token"]
    assert as_(a, jwt, "GET", "/v1/jobs").status == 200
    assert_error(as_(a, jwt, "POST", "/v1/jobs", {"name": "x"}), 403)
    assert c.delete("/v1/acl/users/carol").status == 200
    for s in cluster.servers:
        assert_error(revoked(s, jwt), 401)


def test_a_new_token_works_at_once_on_another_server(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    for _ in range(5):
        made = make_token(a, [], type="management")
        assert as_(c, made["secret_id"], "GET", "/v1/jobs").status == 200
        assert (
            as_(b, made["secret_id"], "DELETE", "/v1/acl/tokens/" + made["accessor_id"]).status
            == 200
        )


def test_management_token_may_transfer_leadership(cluster: Cluster) -> None:
    leader = cluster.leader()
    target = next(s for s in cluster.servers if s is not leader)
    follower = next(s for s in cluster.servers if s not in (leader, target))
    r = follower.post("/v1/raft/transfer-leadership", {"to": target.name})
    assert r.status == 200, r.raw
    assert cluster.leader() is target


def test_a_panel_session_is_relayed_to_the_leader(cluster: Cluster) -> None:
    """A cookie request to a route only the leader serves, sent to a follower."""
    leader = cluster.leader()
    follower = next(s for s in cluster.servers if s is not leader)
    session, csrf, _ = cookie_login(follower, ADMIN_PASSWORD)
    cookie = {"Cookie": f"heroctl_session={session}; heroctl_csrf={csrf}"}
    path = "/v1/raft/transfer-leadership"
    assert_error(anon(follower, "POST", path, {}, headers=cookie), 403, "csrf_failed")
    r = anon(
        follower, "POST", path, {"to": follower.name}, headers={**cookie, "X-CSRF-Token": csrf}
    )
    assert r.status == 200, r.raw
    assert cluster.leader() is follower


def test_token_listing_never_shows_secrets(cluster: Cluster, s1: Server) -> None:
    made = make_token(s1, [], type="management")
    assert made["secret_id"].startswith("ht_")
    listing = s1.get("/v1/acl/tokens")
    assert listing.status == 200
    assert made["secret_id"] not in listing.raw.decode()
    assert all("secret_id" not in t and "secret_hash" not in t for t in listing.body)
    one = s1.get(f"/v1/acl/tokens/{made['accessor_id']}").body
    assert one["accessor_id"] == made["accessor_id"] and "secret_id" not in one
    assert_error(s1.get("/v1/acl/tokens/nope"), 404, "token_not_found")
    users = s1.get("/v1/acl/users").body
    assert "admin" in [u["username"] for u in users]
    assert all("password_hash" not in u for u in users)


def test_acl_objects_crud_and_errors(s1: Server) -> None:
    assert_error(s1.post("/v1/acl/policies", {"name": "p1"}), 400, "missing_field")
    assert_error(s1.post("/v1/acl/policies", {"name": "p1", "rules": {"x": "read"}}), 400)
    assert_error(s1.post("/v1/acl/policies", {"name": "bad name", "rules": {}}), 400)
    assert_error(s1.post("/v1/acl/policies", {"name": "p1", "rules": {"jobs": "list"}}), 400)
    assert s1.post("/v1/acl/policies", {"name": "p1", "rules": {"jobs": "read"}}).status == 201
    assert_error(s1.post("/v1/acl/policies", {"name": "p1", "rules": {}}), 409, "policy_exists")
    r = s1.post("/v1/acl/policies/p1", {"rules": {"jobs": "write"}, "description": "d"})
    assert r.status == 200 and r.body["rules"] == {"jobs": "write"}
    assert s1.get("/v1/acl/policies/p1").body["description"] == "d"
    assert "p1" in [p["name"] for p in s1.get("/v1/acl/policies").body]
    assert_error(
        s1.post("/v1/acl/roles", {"name": "r1", "policies": ["nope"]}), 400, "unknown_policy"
    )
    assert s1.post("/v1/acl/roles", {"name": "r1", "policies": ["p1"]}).status == 201
    tok = s1.post("/v1/acl/tokens", {"roles": ["r1"]})
    assert tok.status == 201, tok.raw
    assert (
        as_(
            s1, tok.body["secret_id"], "POST", "/v1/jobs", {"name": "via-role", "image": "busybox"}
        ).status
        == 201
    )
    assert_error(s1.post("/v1/acl/tokens", {"policies": []}), 400, "missing_field")
    assert_error(s1.post("/v1/acl/tokens", {"type": "root"}), 400, "invalid_field")
    assert_error(s1.post("/v1/acl/tokens", {"policies": ["ghost"]}), 400, "unknown_policy")
    assert_error(s1.post("/v1/acl/users", {"username": "u1", "password": "short"}), 400)
    assert_error(s1.post("/v1/acl/users", {"username": "bad name"}), 400)
    assert s1.delete("/v1/acl/roles/r1").status == 200
    assert_error(s1.delete("/v1/acl/roles/r1"), 404, "role_not_found")
    assert s1.delete("/v1/acl/policies/p1").status == 200
    assert_error(s1.get("/v1/acl/policies/p1"), 404, "policy_not_found")
    assert_error(s1.post("/v1/acl/bootstrap"), 409, "already_bootstrapped")


def test_failed_logins_are_throttled_per_user(cluster: Cluster) -> None:
    s = cluster.servers[2]
    assert (
        s.post("/v1/acl/users", {"username": "victim", "password": "victim-password"}).status == 201
    )
    t0 = time.monotonic()
    for _ in range(5):
        r = anon(s, "POST", "/v1/auth/login", {"username": "victim", "password": "guess-guess"})
        assert_error(r, 401, "invalid_credentials")
    assert time.monotonic() - t0 >= 2.0  # every failure is slowed
    r = anon(s, "POST", "/v1/auth/login", {"username": "victim", "password": "victim-password"})
    assert_error(r, 429, "too_many_login_attempts")
    assert int(r.header("Retry-After")) > 0
    # another server keeps its own count, and other users are unaffected here
    assert login(cluster.servers[0], username="victim", password="victim-password")["token"]
    assert login(s, username="admin", password=ADMIN_PASSWORD)["token"]
