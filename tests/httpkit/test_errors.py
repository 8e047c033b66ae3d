"""The error mapping (httpkit.errors.error_for) of raft's failures, on a
request made with aiohttp's make_mocked_request (no server: our own logic)."""

from __future__ import annotations

import json

from aiohttp.test_utils import make_mocked_request

from httpkit.errors import OUTCOME_HEADER, error_for
from raft.errors import NoLeader, OutcomeUnknown


def test_no_leader_is_503_and_an_unknown_outcome_says_so_mocked_request() -> None:
    request = make_mocked_request("POST", "/v1/acl/tokens")
    plain = error_for(NoLeader("no leader is known"), request, "req_1")
    assert plain.status == 503 and plain.headers["Retry-After"] == "1"
    assert OUTCOME_HEADER not in plain.headers
    unknown = error_for(OutcomeUnknown("no leader confirmed the write"), request, "req_2")
    assert unknown.status == 503 and unknown.headers[OUTCOME_HEADER] == "unknown"
    assert unknown.body is not None
    assert json.loads(unknown.body) == {
        "error": "no_leader",
        "message": "no leader confirmed the write",
        "request_id": "req_2",
    }
