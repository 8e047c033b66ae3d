"""The policy module: rule validation, merging, secret patterns, the route table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.policy import (
    AUTHENTICATED,
    MANAGEMENT,
    PUBLIC,
    Permissions,
    PolicyError,
    Requirement,
    requirement,
    validate_rules,
)


def perms(*rule_sets: dict, management: bool = False) -> Permissions:
    return Permissions.compile([validate_rules(r) for r in rule_sets], management=management)


def test_validate_normalizes_and_rejects() -> None:
    assert validate_rules({"secrets": "read"}) == {"secrets": {"*": "read"}}
    assert validate_rules({"jobs": "write", "secrets": {"db_*": "read"}})["jobs"] == "write"
    for bad in (
        [],
        {"planets": "read"},
        {"jobs": "list"},  # list is for secrets only
        {"jobs": "admin"},
        {"secrets": {}},
        {"secrets": {"bad pattern": "read"}},
        {"secrets": {"x": "execute"}},
        {"secrets": 3},
    ):
        with pytest.raises(PolicyError):
            validate_rules(bad)


def test_resource_access_and_merge() -> None:
    p = perms({"jobs": "read", "nodes": "write"})
    assert p.allows("jobs", "read") and not p.allows("jobs", "write")
    assert p.allows("nodes", "read") and p.allows("nodes", "write")
    assert not p.allows("cluster", "read") and not p.allows("acl", "read")
    merged = perms({"jobs": "read"}, {"jobs": "write"})
    assert merged.allows("jobs", "write")
    denied = perms({"jobs": "write"}, {"jobs": "deny"})
    assert not denied.allows("jobs", "read")
    assert perms(management=True).allows("acl", "write")


def test_secret_patterns_most_specific_wins() -> None:
    p = perms({"secrets": {"db_*": "read", "*": "list", "db_root": "deny"}})
    assert p.secret_access("db_password") == "read"
    assert p.secret_access("api_key") == "list"
    assert p.secret_access("db_root") == "deny"
    assert p.may_secret("api_key", "list") and not p.may_secret("api_key", "read")
    assert not p.may_secret("db_root", "list")
    assert p.allows("secrets", "list") and p.allows("secrets", "read")
    assert not p.allows("secrets", "write")
    assert perms({"jobs": "read"}).secret_access("x") == "none"
    # same pattern in two policies: deny wins, else the higher access
    assert (
        perms({"secrets": {"a*": "read"}}, {"secrets": {"a*": "write"}}).secret_access("ab")
        == "write"
    )
    assert (
        perms({"secrets": {"a*": "read"}}, {"secrets": {"a*": "deny"}}).secret_access("ab")
        == "deny"
    )
    # longer literal prefix is more specific than a shorter one
    p2 = perms({"secrets": {"prod_*": "deny", "prod_db_*": "read"}})
    assert p2.secret_access("prod_db_x") == "read" and p2.secret_access("prod_web") == "deny"
    # regex metacharacters in names are literal
    assert perms({"secrets": {"a.b": "read"}}).secret_access("aXb") == "none"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/health/live", Requirement(PUBLIC)),
        ("GET", "/v1/health/ready", Requirement(PUBLIC)),
        ("POST", "/v1/auth/login", Requirement(PUBLIC)),
        ("POST", "/v1/auth/refresh", Requirement(PUBLIC)),
        ("POST", "/v1/acl/bootstrap", Requirement(PUBLIC)),
        ("POST", "/v1/auth/logout", Requirement(AUTHENTICATED)),
        ("GET", "/v1/acl/tokens/self", Requirement(AUTHENTICATED)),
        ("GET", "/v1/jobs", Requirement("resource", "jobs", "read")),
        ("HEAD", "/v1/jobs/{name}", Requirement("resource", "jobs", "read")),
        ("POST", "/v1/jobs", Requirement("resource", "jobs", "write")),
        ("DELETE", "/v1/jobs/{name}", Requirement("resource", "jobs", "write")),
        ("GET", "/v1/secrets", Requirement("resource", "secrets", "list")),
        ("GET", "/v1/secrets/{name}", Requirement("resource", "secrets", "list")),
        ("POST", "/v1/secrets", Requirement("resource", "secrets", "write")),
        ("GET", "/v1/cluster/status", Requirement("resource", "cluster", "read")),
        ("POST", "/v1/raft/transfer-leadership", Requirement("resource", "cluster", "write")),
        ("POST", "/v1/cluster/peers", Requirement(MANAGEMENT)),
        ("GET", "/v1/acl/tokens", Requirement("resource", "acl", "read")),
        ("POST", "/v1/acl/tokens", Requirement("resource", "acl", "write")),
        ("GET", "/v1/allocations", Requirement("resource", "allocations", "read")),
        ("POST", "/v1/nodes/{id}/drain", Requirement("resource", "nodes", "write")),
        ("POST", "/v1/operator/keyring/rotate", Requirement(MANAGEMENT)),
        ("GET", "/v1/operator/keyring", Requirement(MANAGEMENT)),
        ("GET", "/v1/jobsfoo", Requirement(MANAGEMENT)),  # prefixes end at a segment
        ("GET", "/v1/whatever", Requirement(MANAGEMENT)),
        ("POST", "/v1/health/live", Requirement(MANAGEMENT)),  # only reads are public
        ("GET", "/", Requirement(MANAGEMENT)),
    ],
)
def test_route_table(method: str, path: str, expected: Requirement) -> None:
    assert requirement(method, path) == expected


@given(st.text(max_size=40), st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]))
def test_every_path_gets_a_requirement(path: str, method: str) -> None:
    req = requirement(method, path)
    assert req.kind in (PUBLIC, AUTHENTICATED, MANAGEMENT, "resource")
    if req.kind == PUBLIC:
        assert path.startswith(("/v1/health/", "/v1/auth/", "/v1/acl/bootstrap", "/v1/cluster/ca"))
