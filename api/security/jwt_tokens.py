"""JWTs: HS256 only, with issuer, audience, expiry and a session id.

The algorithm is pinned on both sides (a token that says `none`, RS256 or
anything else is rejected before its signature is looked at), and `exp`,
`iat`, `iss`, `aud`, `sub`, `jti` and `sid` are all required. The clock is
passed in so tests can mint and check expired tokens without sleeping.
"""

from __future__ import annotations

from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "heroctl"
AUDIENCE = "heroctl-api"
REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti", "sid"]
LEEWAY = 30  # seconds a token may claim to be issued in the future (clock skew)


class InvalidJwt(Exception):
    pass


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and not value.startswith(("ht_", "rt_", "hs_"))


def issue(key: bytes, subject: str, session_id: str, jti: str, now: int, ttl: int) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "sid": session_id,
        "jti": jti,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": "JWT"})


def verify(key: bytes, token: str, now: float) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise InvalidJwt(f"malformed token: {e}") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidJwt(f"token algorithm {header.get('alg')!r} is not accepted")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": REQUIRED,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as e:
        raise InvalidJwt(f"invalid token: {e}") from None
    for claim in ("exp", "iat"):
        if not isinstance(claims[claim], int | float) or isinstance(claims[claim], bool):
            raise InvalidJwt(f"claim '{claim}' must be a number")
    if claims["exp"] <= now:
        raise InvalidJwt("token has expired")
    if claims["iat"] > now + LEEWAY:
        raise InvalidJwt("token was issued in the future")
    for claim in ("sub", "jti", "sid"):
        if not isinstance(claims[claim], str):
            raise InvalidJwt(f"claim '{claim}' must be a string")
    return claims
