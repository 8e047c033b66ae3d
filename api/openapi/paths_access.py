"""Route table: login, ACL, secrets, webhooks and ingress (api/routes_auth.py,
routes_acl.py, routes_secrets.py, routes_webhooks.py, routes_ingress.py)."""

from __future__ import annotations

from api.openapi.schemas import named
from api.openapi.vocab import (
    BOOL,
    INDEX,
    LONG_POLL,
    STALE,
    STR,
    Op,
    Param,
    Schema,
    arr,
    obj,
    ok,
)
from domain.passwords import MAX_LENGTH, MIN_LENGTH
from raft.fsm_acl import TOKEN_TYPES, USER_TYPES
from raft.fsm_events import EVENT_TYPES, TOPICS

NAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
USERNAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"}
NAMES = arr(NAME, maxItems=256)
DESCRIPTION: Schema = {"type": "string", "maxLength": 1024}
PASSWORD: Schema = {
    "type": "string",
    "minLength": MIN_LENGTH,
    "maxLength": MAX_LENGTH,
    "description": "The password policy: its length.",
}
CREDENTIAL: Schema = {"type": "string", "minLength": 1, "maxLength": 4096}
POLICY_BODY = obj(
    {
        "name": NAME,
        "description": DESCRIPTION,
        "rules": {
            "type": "object",
            "description": "Resource -> access (`read`, `write`, `deny`; secrets by name "
            'pattern), e.g. `{"jobs": "write", "secrets": {"db_*": "read"}}`.',
        },
    },
    ["rules"],
)
ROLE_BODY = obj({"name": NAME, "description": DESCRIPTION, "policies": NAMES}, ["policies"])
USER_FIELDS: dict[str, Schema] = {
    "type": {"enum": list(USER_TYPES)},
    "password": PASSWORD,
    "policies": NAMES,
    "roles": NAMES,
}
TOKEN_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "maxLength": 256},
    "type": {"enum": list(TOKEN_TYPES)},
    "policies": NAMES,
    "roles": NAMES,
}
EVENTS = arr({"type": "string", "examples": [*EVENT_TYPES, *TOPICS, "*"]}, minItems=1, maxItems=64)
SECRET_NAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
PEM: Schema = {"type": "string", "description": "PEM text."}
TLS: Schema = {
    "anyOf": [
        {"enum": ["acme", "off"]},
        obj({"cert": PEM, "key": PEM}, "*", closed=True),
    ],
    "description": "`acme` (default), `off`, or a manual certificate and its key.",
}
UPDATED = "Updated."
CREATED = "Created."


def _crud(kind: str, base: str, key: str, schema: str, body: Schema) -> tuple[Op, ...]:
    """List, create, read, update (POST or PUT) and delete of one ACL kind."""
    item = f"{base}/{{{key}}}"
    conflict = {409: f"A {kind} of that name exists."}
    update = (ok(named(schema), UPDATED), ok(named(schema), CREATED, 201))
    return (
        Op("GET", base, f"List {kind}s", (ok(arr(named(schema))),), query=(STALE,)),
        Op(
            "POST",
            base,
            f"Create a {kind}",
            (ok(named(schema), status=201),),
            body=body,
            errors=conflict,
        ),
        Op("GET", item, f"Read a {kind}", (ok(named(schema)),), query=(STALE,)),
        Op("POST", item, f"Create or update a {kind}", update, body=body),
        Op("PUT", item, f"Create or update a {kind}", update, body=body),
        Op(
            "DELETE",
            item,
            f"Delete a {kind}",
            (ok(obj({key: STR, "deleted": {"const": True}}, "*")),),
        ),
    )


OPS: tuple[Op, ...] = (
    # --- login -------------------------------------------------------------------------------
    Op(
        "POST",
        "/v1/auth/login",
        "Log in with a username and password, or an ACL token: a JWT and a refresh token",
        (ok(named("LoginAnswer")),),
        body={
            "anyOf": [
                obj({"username": CREDENTIAL, "password": CREDENTIAL}, "*"),
                obj({"acl_token": CREDENTIAL}, "*"),
            ]
        },
        errors={
            401: "Unknown user, wrong password or invalid token.",
            429: "Too many failed logins.",
        },
    ),
    Op(
        "POST",
        "/v1/auth/refresh",
        "Swap a session's JWT (Bearer) or refresh token for a new pair",
        (ok(named("LoginAnswer")),),
        body=obj({"refresh_token": CREDENTIAL}),
        body_required=False,
        errors={401: "The session ended, or the refresh token is not valid."},
    ),
    Op(
        "POST",
        "/v1/auth/logout",
        "End the login session of the Bearer JWT",
        (ok(obj({"revoked": BOOL}, "*")),),
        errors={400: "The credential is not a login session's JWT."},
    ),
    # --- ACL ---------------------------------------------------------------------------------
    Op(
        "POST",
        "/v1/acl/bootstrap",
        "Make the first management token and the admin user (once)",
        (
            ok(
                obj(
                    {
                        "accessor_id": STR,
                        "secret_id": STR,
                        "type": {"const": "management"},
                        "username": STR,
                        "password": {**STR, "description": "Only when generated."},
                    },
                    ["accessor_id", "secret_id", "type", "username"],
                ),
                status=201,
            ),
        ),
        body=obj({"password": PASSWORD}),
        body_required=False,
        errors={409: "Already bootstrapped."},
    ),
    *_crud("policy", "/v1/acl/policies", "name", "Policy", POLICY_BODY),
    *_crud("role", "/v1/acl/roles", "name", "Role", ROLE_BODY),
    Op("GET", "/v1/acl/tokens", "List ACL tokens", (ok(arr(named("Token"))),), query=(STALE,)),
    Op(
        "POST",
        "/v1/acl/tokens",
        "Create an ACL token (its `secret_id` is shown this once)",
        (ok(named("Token"), status=201),),
        body=obj(
            {
                **TOKEN_FIELDS,
                "expiration_ttl": {"type": "integer", "minimum": 1, "maximum": 10 * 365 * 86400},
            }
        ),
    ),
    Op("GET", "/v1/acl/tokens/self", "Who the caller is", (ok({"type": "object"}),)),
    Op(
        "GET",
        "/v1/acl/tokens/{accessor}",
        "Read an ACL token",
        (ok(named("Token")),),
        query=(STALE,),
    ),
    *(
        Op(
            method,
            "/v1/acl/tokens/{accessor}",
            "Update an ACL token's name, type, policies or roles",
            (ok(named("Token")),),
            body=obj(TOKEN_FIELDS),
        )
        for method in ("POST", "PUT")
    ),
    Op(
        "DELETE",
        "/v1/acl/tokens/{accessor}",
        "Revoke an ACL token",
        (ok(obj({"accessor_id": STR, "deleted": {"const": True}}, "*")),),
    ),
    Op("GET", "/v1/acl/users", "List users", (ok(arr(named("User"))),), query=(STALE,)),
    Op(
        "POST",
        "/v1/acl/users",
        "Create a user",
        (ok(named("User"), status=201),),
        body=obj({"username": USERNAME, **USER_FIELDS}, ["username"]),
        errors={409: "The user exists."},
    ),
    Op("GET", "/v1/acl/users/{username}", "Read a user", (ok(named("User")),), query=(STALE,)),
    *(
        Op(
            method,
            "/v1/acl/users/{username}",
            "Create or update a user (a new password, type, policies or roles)",
            (ok(named("User"), UPDATED), ok(named("User"), CREATED, 201)),
            body=obj({"username": USERNAME, **USER_FIELDS}),
        )
        for method in ("POST", "PUT")
    ),
    Op(
        "DELETE",
        "/v1/acl/users/{username}",
        "Delete a user (and end their sessions)",
        (ok(obj({"username": STR, "deleted": {"const": True}}, "*")),),
    ),
    # --- secrets -------------------------------------------------------------------------------
    Op(
        "GET",
        "/v1/secrets",
        "List secrets (names and versions, never values)",
        (ok(arr(named("SecretMeta"))),),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/secrets",
        "Create a secret or give it a new version",
        (ok(named("SecretMeta"), UPDATED), ok(named("SecretMeta"), CREATED, 201)),
        body=obj(
            {"name": SECRET_NAME, "value": {"type": "string", "description": "At most 64 KiB."}},
            "*",
        ),
        errors={409: "Changed concurrently too often: retry.", 413: "The value is over 64 KiB."},
    ),
    Op(
        "GET",
        "/v1/secrets/{name}",
        "Read a secret's value (the newest version, or `version`)",
        (ok(obj({"name": STR, "version": INDEX, "current_version": INDEX, "value": STR}, "*")),),
        query=(Param("version", {"type": "integer", "minimum": 1}, "This version."), *LONG_POLL),
    ),
    Op(
        "DELETE",
        "/v1/secrets/{name}",
        "Delete a secret and all its versions",
        (ok(obj({"name": STR, "deleted": {"const": True}}, "*")),),
    ),
    Op(
        "GET",
        "/v1/secrets/{name}/versions",
        "A secret's versions, newest first",
        (ok(arr(named("SecretVersion"))),),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/secrets/{name}/rollback",
        "A new version with an older version's value",
        (ok(named("SecretMeta")),),
        body=obj({"version": {"type": "integer", "minimum": 1}}, "*"),
        query=(STALE,),
        errors={409: "Changed concurrently too often: retry."},
    ),
    # --- webhooks ------------------------------------------------------------------------------
    Op(
        "POST",
        "/v1/webhooks",
        "Register a URL for events (each delivery signed with `secret`)",
        (ok(named("Webhook"), status=201),),
        body=obj(
            {
                "url": {"type": "string", "format": "uri", "maxLength": 2048},
                "events": EVENTS,
                "secret": {"type": "string", "minLength": 1, "maxLength": 1024},
            },
            "*",
            closed=True,
        ),
        errors={409: "The cluster has its most webhooks already."},
    ),
    Op("GET", "/v1/webhooks", "List webhooks", (ok(arr(named("Webhook"))),), query=LONG_POLL),
    Op("GET", "/v1/webhooks/{id}", "Read a webhook", (ok(named("Webhook")),), query=LONG_POLL),
    Op(
        "DELETE",
        "/v1/webhooks/{id}",
        "Delete a webhook",
        (ok(obj({"id": STR, "deleted": {"const": True}, "index": INDEX}, "*")),),
    ),
    Op(
        "GET",
        "/v1/webhooks/{id}/deliveries",
        "A webhook's delivery attempts, newest first",
        (
            ok(
                obj(
                    {
                        "webhook": STR,
                        "cursor": {},
                        "pending": {},
                        "redeliver": arr(STR),
                        "attempts": arr({"type": "object"}),
                    },
                    ["webhook", "attempts"],
                )
            ),
        ),
        query=LONG_POLL,
    ),
    Op(
        "POST",
        "/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
        "Queue one delivery again",
        (
            ok(
                obj({"webhook": STR, "delivery": STR, "queued": BOOL, "index": INDEX}, "*"),
                status=202,
            ),
        ),
        errors={
            409: "The delivery has not finished, or too many redeliveries are queued.",
            410: "The delivery's event is no longer kept.",
        },
    ),
    # --- ingress -------------------------------------------------------------------------------
    Op(
        "POST",
        "/v1/ingress",
        "Create or update a domain no job spec declares",
        (
            ok(obj({"host": STR, "routes": arr({"type": "object"}), "tls": STR}, "*"), UPDATED),
            ok(
                obj({"host": STR, "routes": arr({"type": "object"}), "tls": STR}, "*"), CREATED, 201
            ),
        ),
        body=obj(
            {
                "host": {"type": "string", "description": "A host name, e.g. `shop.example.com`."},
                "routes": arr(
                    obj({"path": STR, "job": STR, "group": STR, "port": STR}, "*"),
                    minItems=1,
                    maxItems=100,
                ),
                "tls": TLS,
            },
            ["host", "routes"],
        ),
        query=(STALE,),
        errors={409: "A job declares this host: change its spec."},
    ),
    Op(
        "GET",
        "/v1/ingress",
        "List the domains the cluster serves",
        (ok(arr(named("IngressSummary"))),),
        query=LONG_POLL,
    ),
    Op(
        "GET",
        "/v1/ingress/{host}",
        "A domain: routes, targets, certificate",
        (ok(named("Ingress")),),
        query=LONG_POLL,
    ),
    Op(
        "DELETE",
        "/v1/ingress/{host}",
        "Delete a domain made through the API",
        (ok(obj({"host": STR, "deleted": {"const": True}}, "*")),),
        query=(STALE,),
        errors={409: "A job declares this host: change its spec."},
    ),
    Op(
        "POST",
        "/v1/ingress/{host}/renew",
        "Ask for a new ACME certificate now",
        (ok(obj({"host": STR, "renew_requested": {"const": True}}, "*"), status=202),),
        query=(STALE,),
        errors={409: "The domain has no ACME certificate."},
    ),
)
