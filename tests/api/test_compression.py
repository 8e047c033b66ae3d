"""Large JSON answers are gzipped for a client that accepts it, against a real server."""

from __future__ import annotations

import gzip
import json

from tests.support.cluster import Cluster
from tests.support.http import request


def test_a_large_answer_is_gzipped_only_for_a_client_that_accepts_it(
    module_single: Cluster,
) -> None:
    server = module_single.servers[0]
    auth = {"Authorization": f"Bearer {server.token}"}
    gzip_ok = {**auth, "Accept-Encoding": "gzip, deflate"}
    large = server.url + "/v1/openapi.json"
    plain = request("GET", large, headers=auth)
    assert plain.status == 200 and "Content-Encoding" not in plain.headers
    assert len(plain.raw) > 32 * 1024
    zipped = request("GET", large, headers=gzip_ok)
    assert zipped.status == 200 and zipped.headers["Content-Encoding"] == "gzip"
    assert len(zipped.raw) < len(plain.raw) / 4
    assert json.loads(gzip.decompress(zipped.raw)) == plain.body
    small = request("GET", server.url + "/v1/cluster/status", headers=gzip_ok)
    assert small.status == 200 and "Content-Encoding" not in small.headers
