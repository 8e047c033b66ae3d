"""The job spec's JSON Schema (domain/jobspec/schema.py) and the validator
(domain.jobspec.normalize_job) say the same thing: the same fields in every
object, the same enums and defaults; every document the schema accepts, the
validator accepts (unless it breaks one of the rules the schema lists under
`x-rules`), and the invalid documents of a corpus are refused by both at the
same field. Documents are drawn from the schema itself (hypothesis)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from domain.jobspec import JobSpecError, images, ingress, job, normalize_job, privileges, tasks
from domain.jobspec import groups as groups_mod
from domain.jobspec.schema import job_schema, shorthand_keys
from domain.jobspec.schema_check import schema_errors
from tests.domain.jobspec_contexts import CONTEXTS, GETTERS, known_fields
from tests.support.jobspec_strategies import SchemaStrategies, json_values, repair

SCHEMA = job_schema()
DEFS = SCHEMA["$defs"]
STRATEGIES = SchemaStrategies(SCHEMA)
SHORTHAND = set(shorthand_keys())
FULL_DOCS = STRATEGIES.strategy(SCHEMA, only=set(job.JOB_KEYS))
SHORT_DOCS = STRATEGIES.strategy(SCHEMA, only=(job.JOB_KEYS - {"groups"}) | SHORTHAND).filter(
    lambda d: any(k in d for k in SHORTHAND)
)
DOCS = st.one_of(FULL_DOCS, SHORT_DOCS)
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# The validator's messages for the rules the schema lists under `x-rules`
# (and cannot say): a document the schema accepts may fail only these.
X_RULE_MESSAGES = re.compile(
    "|".join(
        [
            r"duplicate (group|task|port) name",
            r"static port \d+ is used twice",
            r"names no port of this (task|group)",
            r"is declared twice",
            r"must be longer than (min_healthy_time|healthy_deadline)",
            r"must not be more than the group's count",
            r"must be at least 1 for the",
            r"is also set in env",
            r"is mounted twice",
            r"cannot split command",
            r"invalid regexp",
        ]
    )
)


def objects() -> list[tuple[str, dict[str, Any]]]:
    return [("job", SCHEMA), *((name, DEFS[name]) for name in CONTEXTS if name != "job")]


def accepts(doc: Any) -> bool:
    return not schema_errors(doc)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- the same fields, enums and defaults -----------------------------------------


@pytest.mark.parametrize("name", list(CONTEXTS))
def test_every_object_has_the_fields_the_validator_knows_and_no_more(name: str) -> None:
    schema = SCHEMA if name == "job" else DEFS[name]
    fields = set(schema["properties"])
    if name == "job":  # the full form's fields; the shorthand's and the server's beside them
        assert SHORTHAND == job.SHORTHAND_TASK_KEYS | job.SHORTHAND_GROUP_KEYS
        server = {k for k, v in schema["properties"].items() if v.get("readOnly")}
        assert server == job.SERVER_OWNED_FIELDS
        fields -= SHORTHAND | server
    assert fields == known_fields(name)
    constants = {
        "job": job.JOB_KEYS,
        "group": groups_mod.GROUP_KEYS,
        "update": groups_mod.UPDATE_KEYS,
        "restart": set(groups_mod.DEFAULT_RESTART),
        "task": tasks.TASK_KEYS,
        "volume": privileges.VOLUME_KEYS,
        "registry_auth": images.REGISTRY_AUTH_KEYS,
    }
    if name in constants:
        assert fields == set(constants[name])


def test_enums_are_the_validators() -> None:
    def enum(obj: str, key: str) -> list[Any]:
        return (SCHEMA if obj == "job" else DEFS[obj])["properties"][key]["enum"]

    assert enum("job", "type") == list(job.JOB_TYPES)
    assert enum("update", "strategy") == list(groups_mod.STRATEGIES)
    assert enum("restart", "mode") == list(groups_mod.RESTART_MODES)
    assert enum("task", "driver") == list(tasks.DRIVERS)
    assert enum("check", "type") == [*tasks.CHECK_TYPES, "script"]
    assert enum("ingress", "tls") == [*ingress.TLS_MODES, False]
    assert DEFS["task"]["properties"]["pull"]["anyOf"][0]["enum"] == list(images.PULL_POLICIES)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("job", "type"),
        ("update", "strategy"),
        ("restart", "mode"),
        ("task", "driver"),
        ("task", "pull"),
        ("check", "type"),
        ("check", "method"),
        ("ingress", "tls"),
        ("constraint", "operator"),
    ],
)
def test_a_value_outside_an_enum_is_refused_by_both_at_its_path(name: str, key: str) -> None:
    doc = CONTEXTS[name]({key: "zz-not-a-choice"})
    with pytest.raises(JobSpecError) as refused:
        normalize_job(doc)
    assert refused.value.path.endswith(key)
    assert refused.value.path in {e.path for e in schema_errors(doc)}


def test_every_operator_spelling_is_accepted_by_both() -> None:
    from domain.jobspec.constraints import OPERATOR_ALIASES

    for spelling in OPERATOR_ALIASES:
        for written in (spelling, spelling.upper(), f" {spelling} "):
            constraint = {"attribute": "node.name", "operator": written, "value": "a"}
            if OPERATOR_ALIASES[spelling] == "distinct_hosts":
                constraint = {"operator": written}
            doc = {"name": "j", "constraints": [constraint]}
            assert accepts(doc), (written, schema_errors(doc))
            normalize_job(doc)


def defaults() -> list[tuple[str, str, Any]]:
    return [
        (name, key, prop["default"])
        for name, obj in objects()
        for key, prop in obj["properties"].items()
        if "default" in prop
    ]


# Fields that only apply with another field set.
FIELD_CONTEXT = {
    ("update", "canary"): {"strategy": "canary"},
    ("update", "auto_promote"): {"strategy": "canary"},
    ("update", "drain_timeout"): {"strategy": "rainbow"},
}


@pytest.mark.parametrize(("name", "key", "default"), defaults())
def test_a_default_is_what_leaving_the_field_out_means(name: str, key: str, default: Any) -> None:
    """Giving a field its documented default changes nothing in the stored
    job, and a stored field holds its default when it is left out."""
    base = FIELD_CONTEXT.get((name, key), {})
    left_out = normalize_job(CONTEXTS[name](base))
    assert normalize_job(CONTEXTS[name]({**base, key: default})) == left_out
    stored = GETTERS[name](left_out)
    if key in stored and key != "groups":
        assert stored[key] == default


def test_every_field_is_documented_with_a_description_and_an_example() -> None:
    for name, obj in objects():
        for key, prop in obj["properties"].items():
            if "$ref" in prop and len(prop) == 1:  # a shorthand field: the task's or group's
                continue
            assert prop.get("description"), (name, key)
            if not prop.get("readOnly"):
                assert len(prop.get("examples", [])) == 1, (name, key)
                example = CONTEXTS[name](
                    {**FIELD_CONTEXT.get((name, key), {}), key: prop["examples"][0]}
                )
                if name == "check" and key == "command":
                    example = CONTEXTS["task"]({"check": {"type": "command", key: ["true"]}})
                assert accepts(example), (name, key, schema_errors(example))


# --- documents drawn from the schema ---------------------------------------------


@PROPERTY_SETTINGS
@given(DOCS)
def test_what_the_schema_accepts_the_validator_accepts(doc: dict[str, Any]) -> None:
    """Once the `x-rules` are kept (tests/support/jobspec_strategies.repair)."""
    fixed = repair(doc)
    assert accepts(fixed), schema_errors(fixed)
    normalized = normalize_job(fixed)
    assert accepts(normalized), schema_errors(normalized)


@PROPERTY_SETTINGS
@given(DOCS)
def test_the_validator_refuses_what_the_schema_accepts_only_for_its_x_rules(
    doc: dict[str, Any],
) -> None:
    try:
        normalize_job(doc)
    except JobSpecError as exc:
        assert X_RULE_MESSAGES.search(exc.message), exc


# Where the schema reports what the validator reports at another field.
ELSEWHERE = {
    "needs a command": "command",  # exec `args` without a command: exec needs one anyway
    "task fields at the top level cannot be combined with 'groups'": "groups",
}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one value replaced, removed or one field added."""
    doc = repair(draw(DOCS))
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(doc, ())
    path = draw(st.sampled_from(paths[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "remove":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent[path[-1]], dict):
        parent[path[-1]][draw(st.text(min_size=1, max_size=8))] = draw(json_values())
    else:
        parent[path[-1]] = draw(json_values())
    return doc


@PROPERTY_SETTINGS
@given(mutated())
def test_a_mutated_document_is_refused_by_the_validator_only_if_the_schema_refuses_it(
    doc: dict[str, Any],
) -> None:
    errors = schema_errors(copy.deepcopy(doc))
    try:
        normalize_job(doc)
    except JobSpecError as exc:
        if not X_RULE_MESSAGES.search(exc.message):
            assert errors, f"the schema took what the validator refused: {exc}"
            where = ELSEWHERE.get(exc.message, exc.path)
            assert where in {e.path for e in errors}, (exc, errors)


def test_a_normalized_rainbow_job_is_a_valid_spec() -> None:
    normalized = normalize_job(CONTEXTS["update"]({"strategy": "rainbow"}))
    assert accepts(normalized), schema_errors(normalized)
    assert normalize_job(normalized) == normalized


def test_a_normalized_job_without_groups_is_a_valid_spec() -> None:
    normalized = normalize_job({"name": "definition"})
    assert accepts(normalized), schema_errors(normalized)
    assert normalize_job(normalized) == normalized


# --- a corpus of invalid documents -------------------------------------------------

INVALID: list[tuple[dict[str, Any], str]] = [
    ({}, "name"),
    ({"name": "Web"}, "name"),
    ({"name": "web", "type": "system"}, "type"),
    ({"name": "web", "priority": 0}, "priority"),
    ({"name": "web", "priority": 101}, "priority"),
    ({"name": "web", "meta": {"a": [1]}}, "meta.a"),
    ({"name": "web", "groups": {}}, "groups"),
    ({"name": "web", "colour": "red"}, "colour"),
    ({"name": "web", "count": 2}, "image"),
    ({"name": "web", "image": "a b"}, "image"),
    ({"name": "web", "image": "x", "count": -1}, "count"),
    ({"name": "web", "image": "x", "driver": "podman"}, "driver"),
    ({"name": "web", "driver": "exec"}, "command"),
    ({"name": "web", "driver": "exec", "command": "x", "image": "y"}, "image"),
    ({"name": "web", "driver": "exec", "command": "x", "privileged": True}, "privileged"),
    ({"name": "web", "driver": "exec", "command": "x", "pull": "always"}, "pull"),
    ({"name": "web", "image": "x", "pull": "sometimes"}, "pull"),
    ({"name": "web", "image": "x", "registry_auth": {"username": "u"}}, "registry_auth.password_secret"),
    ({"name": "web", "image": "x", "registry_auth": {"username": "u", "password_secret": "p", "password": "pw"}}, "registry_auth.password"),
    ({"name": "web", "image": "x", "command": []}, "command"),
    ({"name": "web", "image": "x", "args": "a"}, "args"),
    ({"name": "web", "image": "x", "env": {"1X": "a"}}, "env.1X"),
    ({"name": "web", "image": "x", "env": {"X": None}}, "env.X"),
    ({"name": "web", "image": "x", "secrets": {"X": "bad name"}}, "secrets.X"),
    ({"name": "web", "image": "x", "resources": {"cpu": 0}}, "resources.cpu"),
    ({"name": "web", "image": "x", "resources": {"memory": 5}}, "resources.memory"),
    ({"name": "web", "image": "x", "resources": {"disk": 5}}, "resources.disk"),
    ({"name": "web", "image": "x", "ports": [{"to": 80}]}, "ports[0].name"),
    ({"name": "web", "image": "x", "ports": [{"name": "a b"}]}, "ports[0].name"),
    ({"name": "web", "image": "x", "ports": [{"name": "a", "static": 70000}]}, "ports[0].static"),
    ({"name": "web", "image": "x", "check": {"port": "p"}}, "check.type"),
    ({"name": "web", "image": "x", "ports": [{"name": "p"}], "check": {"type": "http"}}, "check.port"),
    ({"name": "web", "image": "x", "ports": [{"name": "p"}], "check": {"type": "tcp", "port": "p", "path": "/"}}, "check.path"),
    ({"name": "web", "image": "x", "ports": [{"name": "p"}], "check": {"type": "http", "port": "p", "path": "x"}}, "check.path"),
    ({"name": "web", "image": "x", "ports": [{"name": "p"}], "check": {"type": "http", "port": "p", "method": "PATCH"}}, "check.method"),
    ({"name": "web", "image": "x", "ports": [{"name": "p"}], "check": {"type": "http", "port": "p", "interval": "0s"}}, "check.interval"),
    ({"name": "web", "image": "x", "check": {"type": "command"}}, "check.command"),
    ({"name": "web", "image": "x", "labels": {"heroctl.job": "x"}}, "labels.heroctl.job"),
    ({"name": "web", "image": "x", "kill_timeout": "soon"}, "kill_timeout"),
    ({"name": "web", "image": "x", "user": "Root User"}, "user"),
    ({"name": "web", "image": "x", "privileged": "yes"}, "privileged"),
    ({"name": "web", "image": "x", "volumes": [{"source": "/a"}]}, "volumes[0].target"),
    ({"name": "web", "image": "x", "volumes": [{"source": "a", "target": "/b"}]}, "volumes[0].source"),
    ({"name": "web", "image": "x", "volumes": [{"source": "/a/../b", "target": "/b"}]}, "volumes[0].source"),
    ({"name": "web", "image": "x", "volumes": [{"source": "/a", "target": "/b", "read_only": 1}]}, "volumes[0].read_only"),
    ({"name": "web", "image": "x", "update": {"strategy": "yolo"}}, "update.strategy"),
    ({"name": "web", "image": "x", "update": {"max_parallel": -1}}, "update.max_parallel"),
    ({"name": "web", "image": "x", "update": {"canary": 1}}, "update.canary"),
    ({"name": "web", "image": "x", "update": {"strategy": "rainbow", "canary": 1}}, "update.canary"),
    ({"name": "web", "image": "x", "update": {"strategy": "rainbow", "auto_promote": True}}, "update.auto_promote"),
    ({"name": "web", "image": "x", "update": {"drain_timeout": "1h"}}, "update.drain_timeout"),
    ({"name": "web", "image": "x", "update": {"stagger": "x"}}, "update.stagger"),
    ({"name": "web", "image": "x", "update": {"auto_revert": "yes"}}, "update.auto_revert"),
    ({"name": "web", "image": "x", "restart": {"mode": "retry"}}, "restart.mode"),
    ({"name": "web", "image": "x", "restart": {"interval": 0}}, "restart.interval"),
    ({"name": "web", "image": "x", "restart": {"attempts": 1.5}}, "restart.attempts"),
    ({"name": "web", "constraints": [{"attribute": "node.colour", "value": "x"}]}, "constraints[0].attribute"),
    ({"name": "web", "constraints": [{"attribute": "node.name", "operator": "~"}]}, "constraints[0].operator"),
    ({"name": "web", "constraints": [{"attribute": "node.name"}]}, "constraints[0].value"),
    ({"name": "web", "constraints": [{"value": "x"}]}, "constraints[0].attribute"),
    ({"name": "web", "constraints": [{"operator": "distinct_hosts", "value": "3"}]}, "constraints[0].value"),
    ({"name": "web", "constraints": [{"attribute": "node.name", "operator": "set_contains", "value": " , "}]}, "constraints[0].value"),
    ({"name": "web", "groups": [{"tasks": [{"name": "t", "image": "x"}]}]}, "groups[0].name"),
    ({"name": "web", "groups": [{"name": "g"}]}, "groups[0].tasks"),
    ({"name": "web", "groups": [{"name": "g", "tasks": []}]}, "groups[0].tasks"),
    ({"name": "web", "groups": [{"name": "g", "tasks": [{"image": "x"}]}]}, "groups[0].tasks[0].name"),
    ({"name": "web", "groups": [{"name": "g", "tasks": [{"name": "t", "image": "x"}], "ingress": [{"port": "p"}]}]}, "groups[0].ingress[0].host"),
    ({"name": "web", "groups": [{"name": "g", "tasks": [{"name": "t", "image": "x", "ports": [{"name": "p"}]}], "ingress": [{"host": "*.example.com", "port": "p"}]}]}, "groups[0].ingress[0].host"),
    ({"name": "web", "groups": [{"name": "g", "tasks": [{"name": "t", "image": "x", "ports": [{"name": "p"}]}], "ingress": [{"host": "a.example.com", "port": "p", "tls": "on"}]}]}, "groups[0].ingress[0].tls"),
    ({"name": "web", "groups": [{"name": "g", "tasks": [{"name": "t", "image": "x", "ports": [{"name": "p"}]}], "ingress": [{"host": "a.example.com", "port": "p", "path": "/a/../b"}]}]}, "groups[0].ingress[0].path"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "path"), INVALID, ids=[p for _, p in INVALID])
def test_an_invalid_document_is_refused_by_both_at_the_same_field(doc: dict, path: str) -> None:
    with pytest.raises(JobSpecError) as refused:
        normalize_job(copy.deepcopy(doc))
    assert refused.value.path == path, refused.value
    assert path in {e.path for e in schema_errors(doc)}, schema_errors(doc)


def test_schema_errors_read_like_the_validators() -> None:
    doc = {
        "name": "web",
        "image": "x",
        "colour": "red",
        "update": {"strategy": "rainbow", "canary": 1},
        "resources": {"cpu": 0},
    }
    messages = {str(e) for e in schema_errors(doc)}
    assert "update.canary: only applies to the strategies canary, blue-green" in messages
    assert "resources.cpu: must be >= 1, got 0" in messages
    assert any(m.startswith("colour: unknown field (known fields: args, check,") for m in messages)
    assert [str(e) for e in schema_errors({"name": "w", "driver": "exec"})] == [
        "command: is required for the exec driver"
    ]


def test_the_schemas_own_examples_are_valid_jobs() -> None:
    for example in SCHEMA["examples"]:
        assert accepts(example), schema_errors(example)
        normalize_job(example)
