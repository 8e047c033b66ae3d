"""Every way a Docker engine call can fail, as the driver's :class:`DriverError`.

The agent handles one exception from a driver (see :mod:`agent.drivers.base`),
but the docker SDK raises several: its own ``DockerException`` family for
answers it understood, ``requests``' exceptions (``ConnectionError`` when the
socket is gone, ``ReadTimeout`` when the engine hangs: ``OSError`` subclasses,
not ``DockerException``), urllib3's mid-stream errors, plain ``OSError`` from
the socket, and ``KeyError``/``TypeError``/``ValueError``/``AttributeError``
when an answer does not have the shape we read. One escaping used to abort the agent's whole poll
round. :func:`engine_errors` wraps each public method of the driver, so the
mapping is written once and no call path can miss it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from docker.errors import DockerException, ImageNotFound, NotFound
from requests import RequestException
from urllib3.exceptions import HTTPError as Urllib3Error

from agent.drivers.base import DriverError, TaskNotFound
from agent.drivers.docker_containers import explain

__all__ = ["ENGINE_FAILURES", "engine_errors"]

# The engine, or the way to it, failed (requests' exceptions are OSErrors too;
# named for the reader).
ENGINE_FAILURES: tuple[type[Exception], ...] = (
    DockerException,
    RequestException,
    Urllib3Error,
    OSError,
)
# The engine answered something we cannot read.
UNEXPECTED_ANSWERS: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError, AttributeError)

P = ParamSpec("P")
R = TypeVar("R")


def engine_errors(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a driver method: what it raises becomes a DriverError whose
    message starts with ``what`` (a vanished container a TaskNotFound)."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except DriverError:
                raise
            except ImageNotFound as exc:
                raise DriverError(f"{what}: {explain(exc)}") from exc
            except NotFound as exc:
                raise TaskNotFound(f"{what}: the container is gone ({explain(exc)})") from exc
            except ENGINE_FAILURES as exc:
                raise DriverError(f"{what}: {explain(exc)}") from exc
            except UNEXPECTED_ANSWERS as exc:
                raise DriverError(f"{what}: unexpected answer from the engine ({exc!r})") from exc

        return call

    return decorate
