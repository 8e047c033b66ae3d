"""JWTs, authentication from state, key derivation and encryption, passwords (no server)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from api.security import jwt_tokens
from api.security.authn import Authenticator, AuthError
from domain.crypto import JOIN_AUDIENCE, DecryptError, KeyMaterial
from domain.node_credentials import NodeSecrets, new_node_secret, node_credential
from domain.passwords import hash_password, verify_password
from domain.policy import JOIN_ROUTES, NODE_ROUTES
from domain.tokens import hash_secret, new_token_secret, refresh_session_id
from raft.fsm import apply_batch
from raft.keys import generate_cluster_key
from raft.state import State
from raft.views import Reading

KEY = b"k" * 64
NOW = 1_800_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_jwt_roundtrip_and_pinned_claims() -> None:
    tok = jwt_tokens.issue(KEY, "user:bob", "sid1", "jti1", NOW, 3600)
    claims = jwt_tokens.verify(KEY, tok, NOW + 10)
    assert claims["sub"] == "user:bob" and claims["sid"] == "sid1"
    assert claims["iss"] == "heroctl" and claims["aud"] == "heroctl-api"


def forged(header: dict, claims: dict, key: bytes | None = KEY) -> str:
    import hashlib
    import hmac

    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = b"" if key is None else hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


GOOD = {
    "iss": "heroctl",
    "aud": "heroctl-api",
    "sub": "user:bob",
    "sid": "s",
    "jti": "j",
    "iat": NOW,
    "exp": NOW + 3600,
}


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (forged({"alg": "none", "typ": "JWT"}, GOOD, None), "algorithm"),
        (forged({"alg": "HS512", "typ": "JWT"}, GOOD), "algorithm"),
        (forged({"alg": "HS256"}, GOOD, b"wrong key"), "signature"),
        (forged({"alg": "HS256"}, {**GOOD, "exp": NOW - 1}), "expired"),
        (forged({"alg": "HS256"}, {**GOOD, "iss": "other"}), "issuer"),
        (forged({"alg": "HS256"}, {**GOOD, "aud": "other"}), "audience"),
        (forged({"alg": "HS256"}, {k: v for k, v in GOOD.items() if k != "exp"}), "exp"),
        (forged({"alg": "HS256"}, {k: v for k, v in GOOD.items() if k != "sid"}), "sid"),
        (forged({"alg": "HS256"}, {**GOOD, "iat": NOW + 3600}), "future"),
        (forged({"alg": "HS256"}, {**GOOD, "sub": 5}), "sub"),
        ("not.a.jwt", "malformed"),
    ],
)
def test_forged_jwts_are_rejected(token: str, why: str) -> None:
    with pytest.raises(jwt_tokens.InvalidJwt):
        jwt_tokens.verify(KEY, token, NOW)


def test_altered_claims_fail_the_signature() -> None:
    tok = jwt_tokens.issue(KEY, "user:bob", "s", "j", NOW, 3600)
    header, payload, sig = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "user:admin"
    with pytest.raises(jwt_tokens.InvalidJwt):
        jwt_tokens.verify(KEY, f"{header}.{b64(json.dumps(claims).encode())}.{sig}", NOW)
    plain = jwt.decode(
        tok,
        KEY,
        algorithms=["HS256"],
        audience="heroctl-api",
        options={"verify_iat": False, "verify_exp": False},
    )
    assert plain["sub"] == "user:bob"


def _bootstrapped(keys: KeyMaterial, secret: str) -> State:
    state = State()
    cmds = [
        {
            "op": "acl.bootstrap",
            "ts": NOW * 1000,
            "token": {"accessor_id": "acc", "secret_hash": hash_secret(secret)},
            "user": {"username": "admin", "password_hash": None},
            "jwt_key": keys.new_wrapped_jwt_key(),
        },
        {"op": "acl.policy.upsert", "policy": {"name": "ro", "rules": {"jobs": "read"}}},
        {
            "op": "acl.token.create",
            "ts": NOW * 1000,
            "token": {
                "accessor_id": "ro-acc",
                "secret_hash": hash_secret("ht_" + "r" * 40),
                "policies": ["ro"],
                "expires_at": (NOW + 60) * 1000,
            },
        },
        {
            "op": "auth.session.create",
            "ts": NOW * 1000,
            "session": {
                "id": "s1",
                "subject": "user:admin",
                "jti": "j1",
                "refresh_hash": "x",
                "expires_at": (NOW + 999) * 1000,
            },
        },
    ]
    for i, c in enumerate(cmds, start=1):
        assert apply_batch(state, [c], i)[0]["ok"]
    return state


def test_authenticator_resolves_tokens_jwts_and_revocations() -> None:
    keys = KeyMaterial(generate_cluster_key())
    secret = new_token_secret()
    state = _bootstrapped(keys, secret)
    now = [float(NOW)]
    auth = Authenticator(Reading(state), keys, lambda: now[0])
    mgmt = auth.resolve(secret)
    assert mgmt.management and mgmt.subject == "token:acc" and mgmt.rate_class == "management"
    ro = auth.resolve("ht_" + "r" * 40)
    assert not ro.management and ro.permissions.allows("jobs", "read")
    assert not ro.permissions.allows("jobs", "write") and ro.rate_class == "default"
    key = auth.jwt_key()
    tok = jwt_tokens.issue(key, "user:admin", "s1", "j1", NOW, 3600)
    assert auth.resolve(tok).subject == "user:admin"
    with pytest.raises(AuthError):  # a jti the session does not name
        auth.resolve(jwt_tokens.issue(key, "user:admin", "s1", "other", NOW, 3600))
    with pytest.raises(AuthError):  # a JWT signed by another cluster
        auth.resolve(jwt_tokens.issue(b"x" * 64, "user:admin", "s1", "j1", NOW, 3600))
    with pytest.raises(AuthError):
        auth.resolve("ht_unknownunknownunknown")
    with pytest.raises(AuthError):
        auth.resolve("garbage")
    # logout (session delete) kills the cached JWT at once
    apply_batch(state, [{"op": "auth.session.delete", "id": "s1"}], 10)
    with pytest.raises(AuthError):
        auth.resolve(tok)
    # the expiring token stops working when it expires, cached or not
    now[0] = NOW + 61
    with pytest.raises(AuthError):
        auth.resolve("ht_" + "r" * 40)
    # server credentials: genuine, fresh, and made for this server (or for joining)
    auth.server_name = "s-2"
    assert auth.resolve(keys.server_token("s-1", "s-2", now[0])).management
    with pytest.raises(AuthError, match="made for another server"):
        auth.resolve(keys.server_token("s-1", "s-3", now[0]))
    with pytest.raises(AuthError):
        auth.resolve(keys.server_token("s-1", "s-2", now[0] - 3600))
    with pytest.raises(AuthError):
        auth.resolve(KeyMaterial(generate_cluster_key()).server_token("s-1", "s-2", now[0]))
    joining = auth.resolve(keys.server_token("s-4", JOIN_AUDIENCE, now[0]))
    assert not joining.management and joining.scope == JOIN_ROUTES


def test_node_credentials_speak_for_their_own_node_only() -> None:
    cluster_key = generate_cluster_key()
    keys, sealer = KeyMaterial(cluster_key), NodeSecrets(cluster_key)
    state = State()
    secret, other = new_node_secret(), new_node_secret()
    nodes = [
        {"id": "n1", "name": "w1", "agent_secret": sealer.seal("n1", secret)},
        {"id": "n2", "name": "w2", "agent_secret": sealer.seal("n2", other)},
        {"id": "n3", "name": "w3"},  # registered by a server: no node secret
    ]
    for i, node in enumerate(nodes, start=1):
        assert apply_batch(state, [{"op": "node.register", "node": node}], i)[0]["ok"]
    auth = Authenticator(Reading(state), keys, lambda: float(NOW), node_secrets=sealer)
    me = auth.resolve(node_credential(secret, "n1", NOW))
    assert (me.kind, me.name, me.scope, me.management) == ("node", "n1", NODE_ROUTES, False)
    for forged, why in (
        (node_credential(secret, "n2", NOW), "invalid node credential"),  # n1's secret for n2
        (node_credential(secret, "n1", NOW - 600), "expired"),
        (node_credential(secret, "n3", NOW), "no node secret"),
        (node_credential(secret, "ghost", NOW), "no node secret"),
        ("nn_garbage", "malformed"),
    ):
        with pytest.raises(AuthError, match=why):
            auth.resolve(forged)


def test_secrets_need_the_cluster_key_name_and_version() -> None:
    ck = generate_cluster_key()
    keys = KeyMaterial(ck)
    nonce, ct = keys.seal_secret("k1", "db", 3, b"s3cret")
    assert b"s3cret" not in ct
    assert KeyMaterial(ck).open_secret("k1", "db", 3, nonce, ct) == b"s3cret"
    for args in (("k1", "db", 4), ("k1", "dc", 3), ("k2", "db", 3)):
        with pytest.raises(DecryptError):
            keys.open_secret(*args, nonce, ct)
    with pytest.raises(DecryptError):
        KeyMaterial(generate_cluster_key()).open_secret("k1", "db", 3, nonce, ct)
    wrapped = keys.new_wrapped_jwt_key()
    assert len(keys.unwrap_jwt_key(wrapped)) == 64
    with pytest.raises(DecryptError):
        KeyMaterial(generate_cluster_key()).unwrap_jwt_key(wrapped)


def test_passwords_and_token_formats() -> None:
    t0 = time.perf_counter()
    stored = hash_password("correct horse battery")
    assert time.perf_counter() - t0 < 2.0
    assert stored.startswith("scrypt$14$8$1$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", None) and not verify_password("x", "md5$abc")
    assert hash_password("same password") != hash_password("same password")  # salted
    assert refresh_session_id("rt_" + "a" * 32 + ".abcdefghijklmnopqrstuvwxyz") == "a" * 32
    assert refresh_session_id("rt_nope") is None
