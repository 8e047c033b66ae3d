"""A property-based fuzzer of the API driven by its OpenAPI document (what
schemathesis does, in the small: schemathesis is not installable here).

For one operation of ``GET /v1/openapi.json`` it draws requests with
hypothesis: path parameters (names that exist in the seeded cluster, or any
text), the documented query parameters (values from their schemas, or any
text), a body from the request schema (the job spec's bodies from
tests/support/jobspec_strategies.py), or broken JSON, or no body; with the
management token, no token or a wrong one. ``check`` says what is wrong
with an answer: a 5xx, an error without the envelope, a status the document
does not list, or a success whose body the document's schema refuses.

Bounded for the test suite: long-poll ``wait`` values are always short, and
a stream (``text/event-stream``) is closed once its headers arrived.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from domain.jobspec import job as jobspec
from domain.jobspec.schema import job_schema, shorthand_keys
from tests.support.jobspec_strategies import SchemaStrategies, repair

Schema = Mapping[str, Any]
SHORT_WAITS = ["0", "1ms", "0.05s", "100ms"]
NEVER_STREAM = ["false", "0", "no"]
URLS = ["http://127.0.0.1:9/hook", "https://127.0.0.1:9/h?x=1", "ftp://127.0.0.1/x", "no url"]
# Answers a fuzzed request may get that are not bugs: a node nobody runs
# (the fuzzer registers some) cannot give its logs or metrics.
ALLOWED_5XX = {(503, "node_unreachable")}

HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=24)
JOB_STRATEGIES = SchemaStrategies(job_schema())
_SHORTHAND = set(shorthand_keys())
JOBS = st.one_of(
    JOB_STRATEGIES.strategy(JOB_STRATEGIES.root, only=set(jobspec.JOB_KEYS)),
    JOB_STRATEGIES.strategy(
        JOB_STRATEGIES.root, only=(jobspec.JOB_KEYS - {"groups"}) | _SHORTHAND
    ).filter(lambda d: any(k in d for k in _SHORTHAND)),
).map(repair)

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@dataclass
class Seeds:
    """What exists in the cluster, for drawn requests to find: path values by
    the path segment before the parameter (``/v1/jobs/{name}``: ``jobs``), and
    query parameter or body field values by name."""

    paths: dict[str, list[str]]
    values: dict[str, list[Any]]


@dataclass
class Call:
    method: str
    path: str  # with the parameters in, quoted
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None

    def target(self) -> str:
        return self.path + ("?" + urlencode(self.query) if self.query else "")

    def __str__(self) -> str:
        body = (self.body or b"")[:300]
        auth = self.headers.get("Authorization", "none")[:12]
        return f"{self.method} {self.target()} (auth {auth}...) body={body!r}"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes | None  # None: a stream, closed unread

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")


@dataclass
class Wire:
    """One keep-alive connection to a server (reopened after any failure)."""

    url: str
    context: Callable[[], ssl.SSLContext]
    timeout: float = 20.0
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    def _open(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout, context=self.context()
            )
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self.timeout)

    def send(self, call: Call) -> Reply:
        for attempt in (1, 2):  # a kept connection the server closed: once more, fresh
            conn = self._conn or self._open()
            self._conn = None
            try:
                conn.request(call.method, call.target(), body=call.body, headers=call.headers)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt == 2:
                    raise
                continue
            headers = dict(resp.getheaders())
            if resp.getheader("Content-Type", "").startswith(
                ("text/event-stream", "application/x-ndjson")
            ):
                conn.close()  # a stream: its start is what is checked
                return Reply(resp.status, headers, None)
            body = resp.read()
            if not resp.will_close:
                self._conn = conn
            else:
                conn.close()
            return Reply(resp.status, headers, body)
        raise AssertionError("unreachable")


class Fuzzer:
    """Request strategies and answer checks for the operations of ``doc``."""

    def __init__(self, doc: dict[str, Any], token: str, seeds: Seeds) -> None:
        self.doc = doc
        self.token = token
        self.seeds = seeds
        self._validators: dict[int, Draft202012Validator] = {}

    # --- drawing ---------------------------------------------------------------------------
    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def values(self, schema: Schema) -> st.SearchStrategy[Any]:
        """Values ``schema`` describes (loosely: this fuzzer's schemas are simple)."""
        if schema.get("$ref") == "#/components/schemas/Job":
            return JOBS
        schema = self.resolve(schema)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return st.one_of([self.values(s) for s in schema[key]])
        kinds = schema.get("type")
        if kinds is None:
            return ANY_JSON
        kinds = kinds if isinstance(kinds, list) else [kinds]
        return st.one_of([self._typed(k, schema) for k in kinds])

    def _typed(self, kind: str, schema: Schema) -> st.SearchStrategy[Any]:
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind in ("integer", "number"):
            return st.integers(schema.get("minimum"), schema.get("maximum"))
        if kind == "string":
            if schema.get("format") == "uri":
                return st.sampled_from(URLS)
            if "pattern" in schema:
                return st.from_regex(schema["pattern"], fullmatch=True)
            low = schema.get("minLength", 0)
            return st.text(min_size=low, max_size=max(low, min(schema.get("maxLength", 16), 16)))
        if kind == "array":
            low = schema.get("minItems", 0)
            return st.lists(
                self.values(schema.get("items", {})), min_size=low, max_size=max(low, 3)
            )
        props: Mapping[str, Schema] = schema.get("properties", {})
        required = set(schema.get("required", []))

        @st.composite
        def objects(draw: st.DrawFn) -> dict[str, Any]:
            return {
                k: draw(self._seeded(k, s))
                for k, s in props.items()
                if k in required or draw(st.booleans())
            }

        return objects()

    def _seeded(self, name: str, schema: Schema) -> st.SearchStrategy[Any]:
        known = self.seeds.values.get(name)
        if known:
            return st.one_of(st.sampled_from(known), self.values(schema))
        return self.values(schema)

    def _path_value(self, path: str, name: str) -> st.SearchStrategy[str]:
        parts = path.split("/")
        owner = parts[parts.index("{" + name + "}") - 1]  # /v1/jobs/{name}: "jobs"
        known = self.seeds.paths.get(owner, [])
        text = st.text(min_size=1, max_size=24)
        return st.one_of(st.sampled_from(known), text) if known else text

    def _query_value(self, param: Mapping[str, Any]) -> st.SearchStrategy[str]:
        name = param["name"]
        if name == "wait":
            return st.sampled_from(SHORT_WAITS)
        if name in ("stream", "follow"):
            return st.sampled_from(NEVER_STREAM)
        drawn = self._seeded(name, param["schema"]).map(_as_query_text)
        return st.one_of(drawn, drawn, st.text(max_size=12))

    def _body(self, op: Mapping[str, Any]) -> st.SearchStrategy[bytes | None]:
        spec = op.get("requestBody")
        if spec is None:
            return st.just(None)
        media, content = next(iter(spec["content"].items()))
        if media != "application/json":
            return st.binary(max_size=256)
        good = self.values(content["schema"]).map(lambda v: json.dumps(v).encode())
        bad = st.one_of(
            ANY_JSON.map(lambda v: json.dumps(v).encode()),
            st.binary(max_size=64),
            st.just(b"{"),
            st.just(b""),
        )
        return st.one_of(good, good, good, bad)

    def calls(self, method: str, path: str) -> st.SearchStrategy[Call]:
        op = self.doc["paths"][path][method.lower()]
        params = op.get("parameters", [])

        @st.composite
        def draw_call(draw: st.DrawFn) -> Call:
            url = path
            query: dict[str, str] = {}
            headers = {"Content-Type": "application/json"}
            for p in params:
                if p["in"] == "path":
                    value = draw(self._path_value(path, p["name"]))
                    url = url.replace("{" + p["name"] + "}", quote(value, safe=""))
                elif p.get("required") or p["name"] == "wait" or draw(st.booleans()):
                    if p["in"] == "header":  # what HTTP allows in a field: visible ASCII
                        headers[p["name"]] = draw(HEADER_TEXT)
                    else:
                        query[p["name"]] = draw(self._query_value(p))
            who = draw(st.sampled_from(["token"] * 8 + ["none", "wrong"]))
            if who == "token":
                headers["Authorization"] = f"Bearer {self.token}"
            elif who == "wrong":
                headers["Authorization"] = "Bearer ht_" + draw(st.text("abcdef0123", max_size=40))
            return Call(method, url, query, headers, draw(self._body(op)))

        return draw_call()

    # --- checking --------------------------------------------------------------------------
    def _validator(self, schema: Schema) -> Draft202012Validator:
        key = id(schema)
        if key not in self._validators:
            root = {**schema, "components": self.doc["components"]}
            self._validators[key] = Draft202012Validator(root)
        return self._validators[key]

    def check(self, method: str, path: str, call: Call, reply: Reply) -> list[str]:
        """What is wrong with ``reply`` to ``call`` (nothing: an empty list)."""
        op = self.doc["paths"][path][method.lower()]
        problems: list[str] = []
        documented = op["responses"]
        body: Any = None
        if reply.body is not None and reply.header("Content-Type").startswith("application/json"):
            try:
                body = json.loads(reply.body)
            except ValueError:
                problems.append("a JSON content type with a body that is not JSON")
        if reply.status >= 400:
            error = self.doc["components"]["schemas"]["Error"]
            if body is None or not self._validator(error).is_valid(body):
                problems.append(f"{reply.status} without the error envelope: {reply.body!r:.300}")
            elif body["request_id"] != reply.header("X-Request-Id"):
                problems.append("the envelope's request_id is not X-Request-Id")
            elif reply.status >= 500 and (reply.status, body["error"]) not in ALLOWED_5XX:
                problems.append(f"a server error: {reply.status} {body}")
        if str(reply.status) not in documented and not _from_router(reply.status, body):
            problems.append(f"status {reply.status} is not documented: {reply.body!r:.300}")
        success = 200 <= reply.status < 300 and str(reply.status) in documented
        media = reply.header("Content-Type").split(";")[0].strip()
        if success and media not in documented[str(reply.status)].get("content", {media: 0}):
            problems.append(f"{reply.status} answered {media}, which is not documented")
        if success and body is not None:
            content = documented[str(reply.status)].get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema is not None:
                errors = sorted(self._validator(schema).iter_errors(body), key=str)
                if errors:
                    e = errors[0]
                    where = "/".join(map(str, e.absolute_path))
                    problems.append(
                        f"the answer does not match its schema at {where}: {e.message:.300}"
                    )
        return problems


def _from_router(status: int, body: Any) -> bool:
    """A 404 or 405 of the router: a path value with a ``/`` in it (``%2F``)
    matched another route, or none."""
    if not isinstance(body, dict) or status not in (404, 405):
        return False
    return body.get("error") == "method_not_allowed" or str(body.get("message")).startswith(
        "no route for"
    )


def _as_query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)
