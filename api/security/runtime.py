"""The security runtime of one server: settings, keys, caches, limiters, app keys.

One `Security` per app, built from `SecuritySettings` (which the daemon fills
from its config). Handlers reach it with `security_of(request)` and the
caller's identity with `identity_of(request)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from api.security.authn import Authenticator
from api.security.login_guard import LoginGuard
from api.security.refresh_grace import RefreshSeal
from domain.crypto import KeyMaterial
from domain.node_credentials import NodeSecrets
from httpkit.errors import ApiError
from httpkit.identity import Identity, identity_of
from httpkit.ratelimit import RateLimiter
from raft.views import Reading

RATE_HEADERS = "heroctl.rate_headers"  # request key: X-RateLimit-* for the response

DAY = 86_400


@dataclass
class SecuritySettings:
    cluster_key: str
    server_name: str = ""  # whom server credentials must be made for (this server)
    rate_default: int = 1000  # requests per minute; 0 = unlimited
    rate_management: int = 10_000
    rate_service: int = 10_000
    jwt_ttl: int = DAY  # seconds a JWT from /v1/auth/login lives
    refresh_ttl: int = 30 * DAY  # seconds a session can be refreshed
    max_sessions: int = 20  # sessions per identity; a new login ends the oldest beyond it
    refresh_grace: float = 10.0  # seconds a replaced refresh token still gets the new pair
    bootstrap_token: str | None = None  # HEROCTL_BOOTSTRAP_TOKEN: first leader bootstraps
    admin_password: str | None = None  # HEROCTL_ADMIN_PASSWORD, with the token above
    announce_bootstrap: Callable[[str, str | None], None] | None = None  # dev mode
    login_failure_delay: float = 0.5  # seconds added to every failed login
    login_max_per_user: int = 5
    login_max_per_address: int = 20
    login_window: float = 300.0
    webhooks_allow_private: bool = False  # [webhooks] allow_private: URLs may reach 10.x, ::1 ...


class Security:
    def __init__(
        self, settings: SecuritySettings, reading: Reading, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.keys = KeyMaterial(settings.cluster_key)
        self.node_secrets = NodeSecrets(settings.cluster_key)
        self.auth = Authenticator(
            reading,
            self.keys,
            clock,
            server_name=settings.server_name,
            node_secrets=self.node_secrets,
        )
        self.limiter = RateLimiter(clock)
        self.refresh_seal = RefreshSeal(settings.cluster_key)
        self.login_guard = LoginGuard(
            time.monotonic,
            max_per_user=settings.login_max_per_user,
            max_per_address=settings.login_max_per_address,
            window=settings.login_window,
        )
        self.clock = clock

    def limit_for(self, rate_class: str) -> int:
        s = self.settings
        if rate_class == "default":
            return s.rate_default
        return {"management": s.rate_management, "service": s.rate_service, "server": 0}.get(
            rate_class, s.rate_default
        )


SECURITY = web.AppKey("security", Security)


def security_of(request: web.Request) -> Security:
    return request.app[SECURITY]


def require_secret(request: web.Request, name: str, access: str) -> Identity:
    ident = identity_of(request)
    if not ident.permissions.may_secret(name, access):
        raise ApiError(403, "forbidden", f"this token may not {access} secret '{name}'")
    return ident
