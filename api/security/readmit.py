"""Whether an identity may call a route, and whether the credential behind a
request that has been open a while (a long poll, an event or log stream)
would still be let in now: not revoked, logged out or expired, and still
allowed the route (a policy can change under an open request). Resolving is
cached per ACL version (api.security.authn), so a stream may ask often.
"""

from __future__ import annotations

from aiohttp import web

from api.security.authn import AuthError
from api.security.cookies import session_credential
from api.security.runtime import security_of
from domain.policy import AUTHENTICATED, MANAGEMENT, Requirement, requirement
from httpkit.errors import ApiError
from httpkit.identity import IDENTITY, Identity, bearer

__all__ = ["permitted", "readmit", "route_path", "still_admitted"]


def route_path(request: web.Request) -> str:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else None
    return canonical or request.path


def permitted(identity: Identity, req: Requirement, route: tuple[str, str]) -> bool:
    if identity.scope is not None:  # a node, a joining server: these routes only
        return route in identity.scope
    if req.kind == AUTHENTICATED:
        return True
    if req.kind == MANAGEMENT:
        return identity.management
    assert req.resource is not None and req.access is not None
    return identity.permissions.allows(req.resource, req.access)


def readmit(request: web.Request) -> None:
    """Admit the open request's credential again: 401 when it no longer
    resolves, 403 when it no longer may call the route."""
    if request.get(IDENTITY) is None:
        return  # a public route: nothing was asked of it
    credential = bearer(request) or session_credential(request)
    if credential is None:
        raise ApiError(401, "invalid_token", "the request's credential is gone")
    try:
        identity = security_of(request).auth.resolve(credential)
    except AuthError as e:
        raise ApiError(401, e.code, f"while the request was open: {e.message}") from None
    route = (request.method.upper(), route_path(request))
    if not permitted(identity, requirement(*route), route):
        raise ApiError(403, "forbidden", "while the request was open, its permission was taken")


def still_admitted(request: web.Request) -> bool:
    """:func:`readmit` as a yes or no (a stream that ends instead of answering)."""
    try:
        readmit(request)
    except ApiError:
        return False
    return True
