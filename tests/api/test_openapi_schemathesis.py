"""Schemathesis against a real 3-server cluster, driven by
`GET /v1/openapi.json` (the document the servers serve): every operation,
a few generated requests each, must never answer a 5xx, and every error
must carry the contract's envelope (`error`, `message`, `request_id`).

Bounded: EXAMPLES per operation, no shrinking, each request spread over
the three servers. Left out, as in tests/api/test_openapi_fuzz.py (which
also checks statuses and success bodies with our own generator): the
operations that would break the cluster under the others. The cluster is
seeded (a node, a placed job, a secret, ACL objects, a webhook, an ingress
domain) so that path parameters can find something."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import cycle
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from tests.api.test_openapi_fuzz import SKIPPED, _seed
from tests.support import tls
from tests.support.cluster import Cluster

EXAMPLES = 5
SHORT_WAIT = "200ms"  # a long poll answers at once or after this: never the generated minutes
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=list(HealthCheck),
)


class Target:
    """The cluster's servers in turn, a session trusting the cluster CA, and
    the management token."""

    def __init__(self, c: Cluster) -> None:
        self.urls = cycle([s.url for s in c.servers])
        self.session = requests.Session()
        self.session.verify = str(tls.bundle())
        self.headers = {"Authorization": f"Bearer {c.token}"}
        self.schema = schemathesis.openapi.from_url(
            f"{c.servers[0].url}/v1/openapi.json", verify=str(tls.bundle())
        )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    c = Cluster(tmp_path_factory.mktemp("schemathesis"), 3).start()
    try:
        _seed(c)
        t = Target(c)
        yield t
        t.session.close()
    finally:
        c.stop()


def operations() -> list[tuple[str, str]]:
    from api.openapi.document import document

    doc = document()
    return [(m.upper(), p) for p, item in sorted(doc["paths"].items()) for m in sorted(item)]


def _envelope(response: Any) -> str | None:
    """Why an error answer is not in the envelope (None: it is)."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} without a JSON body: {response.text[:200]!r}"
    missing = [
        k for k in ("error", "message", "request_id") if not isinstance(body, dict) or k not in body
    ]
    return f"{response.status_code} without {missing}: {body!r}"[:400] if missing else None


@pytest.mark.parametrize(
    ("method", "path"), operations(), ids=[f"{m} {p}" for m, p in operations()]
)
def test_schemathesis_finds_no_server_error_and_every_error_has_the_envelope(
    target: Target, method: str, path: str
) -> None:
    if (method, path) in SKIPPED:
        pytest.skip(SKIPPED[(method, path)])
    operation = target.schema[path][method]

    @SETTINGS
    @given(operation.as_strategy())
    def run(case: Any) -> None:
        if case.query and ("wait" in case.query or "index" in case.query):
            case.query["wait"] = SHORT_WAIT  # an index alone would wait 5 minutes
        response = case.call(
            base_url=next(target.urls),
            session=target.session,
            headers=target.headers,
            timeout=15,
            verify=target.session.verify,
            stream=True,
        )
        if "text/event-stream" in response.headers.get("Content-Type", ""):
            response.close()
            assert response.status_code < 500, f"{case.method} {case.formatted_path}"
            return  # a stream: its headers are the answer (it never ends)
        response.content  # noqa: B018 - read the whole answer
        case.validate_response(response, checks=[not_a_server_error])
        problem = _envelope(response)
        assert problem is None, f"{case.method} {case.formatted_path}: {problem}"

    run()
