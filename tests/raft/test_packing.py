"""raft.packing: JSON for JSON documents, msgpack for the rest, both read back exactly."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from raft.packing import pack, unpack

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers(0, 9), inner, max_size=4)
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return (
            list(a) == list(b)
            and all(same(k, k2) for k, k2 in zip(a, b, strict=True))
            and all(same(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@given(st.dictionaries(st.text(max_size=6) | st.integers(0, 9), values, max_size=5))
def test_every_document_reads_back_exactly(doc: dict[Any, Any]) -> None:
    assert same(unpack(pack(doc)), doc)


def test_json_documents_are_json_and_others_msgpack() -> None:
    job = {"name": "web", "count": 2, "cpu": 0.5, "tags": ["a"], "stop": False, "x": None}
    assert pack(job).startswith(b"{")
    sealed = {"name": "db", "ciphertext": b"\x00\x01"}
    assert pack(sealed) == msgpack.packb(sealed, use_bin_type=True)
    assert unpack(pack(sealed)) == sealed
    assert unpack(pack({1: "int key"})) == {1: "int key"}


def test_documents_packed_before_json_still_read() -> None:
    old = msgpack.packb({"name": "web", "groups": [{"count": 1}]}, use_bin_type=True)
    assert unpack(old) == {"name": "web", "groups": [{"count": 1}]}


def test_packed_documents_hold_no_spare_buffer() -> None:
    """orjson's own bytes keep a 4 KB buffer; stored documents must not."""
    doc = {"name": "web", "groups": [{"name": "g", "count": 2, "meta": {"k": "v" * 200}}]}
    tracemalloc.start()
    try:
        kept = [pack(doc) for _ in range(200)]
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / len(kept) < 2 * len(kept[0])
