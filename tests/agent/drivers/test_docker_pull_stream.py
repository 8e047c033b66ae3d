"""How a pull's stream becomes events and errors (no engine: the stream is
given): progress at most every PROGRESS_EVERY seconds, the registry's error
as the DriverError's words, the password scrubbed from whatever comes back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import DriverError, RegistryAuth
from agent.drivers.docker_images import PROGRESS_EVERY, pull_image

MB = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StreamEngine:
    """``api.pull`` yields ``lines`` (advancing the clock by ``step`` each);
    ``images.get`` answers the pulled image's size."""

    def __init__(self, lines: list[dict[str, Any]], clock: Clock, step: float) -> None:
        self.lines, self.clock, self.step = lines, clock, step
        self.auth: Any = None
        outer = self

        class Api:
            def pull(self, image: str, **kw: Any) -> Iterator[dict[str, Any]]:
                outer.auth = kw.get("auth_config")
                for line in outer.lines:
                    outer.clock.now += outer.step
                    yield line

        class Image:
            attrs = {"Size": 120 * MB}

        class Images:
            def get(self, image: str) -> Image:
                return Image()

        self.api, self.images = Api(), Images()


def downloading(layer: str, current: int, total: int) -> dict[str, Any]:
    return {
        "status": "Downloading",
        "id": layer,
        "progressDetail": {"current": current, "total": total},
    }


def test_a_long_pull_reports_its_progress_now_and_then() -> None:
    clock = Clock()
    lines = [
        {"status": "Pulling from shop/web", "id": "1.4"},
        downloading("a", 10 * MB, 80 * MB),
        downloading("b", 5 * MB, 40 * MB),
        downloading("a", 40 * MB, 80 * MB),
        {"status": "Download complete", "id": "b", "progressDetail": {}},
        downloading("a", 80 * MB, 80 * MB),
        {"status": "Pull complete", "id": "a", "progressDetail": {}},
    ]
    engine = StreamEngine(lines, clock, step=PROGRESS_EVERY / 2)
    heard: list[tuple[str, str]] = []
    pull_image(
        engine, "r/shop/web:1.4", RegistryAuth("ci", "pw"), lambda k, m: heard.append((k, m)), clock
    )  # type: ignore[arg-type]
    assert engine.auth == {"username": "ci", "password": "pw"}
    assert heard == [
        ("pulling", "pulling image r/shop/web:1.4 as 'ci'"),
        ("pulling", "pulling image r/shop/web:1.4: 10.0 of 80.0 MB"),
        ("pulling", "pulling image r/shop/web:1.4: 45.0 of 120.0 MB"),
        ("pulling", "pulling image r/shop/web:1.4: 120.0 of 120.0 MB"),
        ("pulled", "pulled image r/shop/web:1.4 (120.0 MB) in 105.0 s"),
    ]


def test_an_error_in_the_stream_is_the_drivers_error_without_the_password() -> None:
    clock = Clock()
    error = {"error": "denied: user ci with password s3cr3t-pw may not", "errorDetail": {}}
    engine = StreamEngine([{"status": "Pulling"}, error], clock, step=0.1)
    heard: list[tuple[str, str]] = []
    with pytest.raises(DriverError) as failed:
        pull_image(
            engine,
            "r/app:1",
            RegistryAuth("ci", "s3cr3t-pw"),
            lambda k, m: heard.append((k, m)),
            clock,
        )  # type: ignore[arg-type]
    assert str(failed.value) == (
        "cannot pull image 'r/app:1' as 'ci': denied: user ci with password [redacted] may not"
    )
    assert [k for k, _ in heard] == ["pulling"]
