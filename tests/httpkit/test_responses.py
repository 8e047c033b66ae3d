"""httpkit.responses: JSON bodies and the shared renderings of read views."""

from __future__ import annotations

import pytest

from httpkit.responses import RenderedViews, dumps, loads


def test_a_rendering_is_shared_only_at_the_index_it_was_read_at() -> None:
    views = RenderedViews()
    assert views.get("web", 7) is None
    body = views.put("web", 7, dumps({"name": "web", "version": 1}))
    assert views.get("web", 7) is body
    assert views.get("web", 8) is None  # any change to the view's tables: render again
    assert views.get("db", 7) is None
    views.put("web", 8, dumps({"name": "web", "version": 2}))
    assert loads(views.get("web", 8) or b"") == {"name": "web", "version": 2}
    assert views.get("web", 7) is None


def test_views_are_bounded() -> None:
    views = RenderedViews(limit=3)
    for i in range(3):
        views.put(f"job-{i}", 1, b"{}")
    views.put("job-0", 2, b"{}")  # replacing an entry never evicts
    assert views.get("job-2", 1) == b"{}"
    views.put("job-3", 1, b"{}")
    assert views.get("job-1", 1) is None and views.get("job-3", 1) == b"{}"


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b"\xff", b'{"a": 1'])
def test_what_is_not_json_does_not_parse(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)
