"""When a request is tried again, and where: failover between several servers
and bounded retries of 429 and 503 (the transport's policy, in one place).

One request is a series of *tries*, each on one server. What a try ended with
decides the next step:

- ``REFUSED``: no connection (refused, no route, DNS): the request surely
  never reached a server. Any method goes on to the next server at once.
- ``LOST``: a connection, then no answer (reset, closed before answering):
  the server may have acted on it. Only an idempotent request (GET, HEAD,
  PUT, DELETE, or a POST its caller marks idempotent) goes on to the next
  server; any other request fails with it.
- ``BUSY``: 503 (no leader, shutting down): the next server at once; once
  every server was tried, a pause (backoff, at least the answer's
  ``Retry-After``) and another round. A 503 that says
  ``X-HeroCtl-Outcome: unknown`` (a write proposed but not confirmed: it may
  still be committed) is ``LOST`` instead.
- ``LIMITED``: 429: the same server after its ``Retry-After`` (limits are
  per server: hopping to another would only sidestep the limit).

Any other outcome (an answer, a timeout, an untrusted certificate) ends the
request. 429 and 503 are retried for every method: heroctld answers them
before acting (the rate limiter before the handler; ``no_leader`` when no
leader took the write), except that 503 whose outcome is unknown. A round
whose tries were all ``REFUSED`` ends the request: nobody is listening, and waiting would
only delay the error. Pauses are bounded by :class:`RetryPolicy`: at most
``attempts`` rounds, and no pause that would end after ``budget`` seconds.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import aiohttp

from client.errors import ApiClientError, ApiUnreachable

__all__ = [
    "DEFAULT_RETRY",
    "IDEMPOTENT_METHODS",
    "Outcome",
    "RetryPolicy",
    "Tries",
    "TryFailed",
    "answer_outcome",
    "connection_outcome",
    "reported_error",
    "retry_after_seconds",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
OUTCOME_HEADER = "X-HeroCtl-Outcome"


class Outcome(Enum):
    """How one try ended, as far as trying again is concerned."""

    REFUSED = "refused"
    LOST = "lost"
    BUSY = "busy"
    LIMITED = "limited"
    FINAL = "final"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on trying a request again after 429/503 or a lost answer.

    ``attempts``: rounds at most (a round tries each server once, or the
    same server again after a 429); ``budget``: seconds after the first try
    past which no pause ends; pauses grow from ``base_delay`` to
    ``max_delay`` (with jitter), and are never shorter than ``Retry-After``.
    """

    attempts: int = 5
    budget: float = 30.0
    base_delay: float = 0.25
    max_delay: float = 5.0

    def backoff(self, pause: int, rng: random.Random) -> float:
        """The ``pause``-th pause (0-based): exponential, with half of it jittered."""
        step = min(self.max_delay, self.base_delay * (2**pause))
        return step / 2 + rng.random() * step / 2


DEFAULT_RETRY = RetryPolicy()


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date); None if absent."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Tries:
    """The state of one request's tries over ``servers`` servers, starting at ``first``.

    The transport calls :meth:`after` with each failed try's outcome; the
    answer is the server to try next and the pause before it, or None: stop
    and raise that try's error.
    """

    servers: int
    first: int
    policy: RetryPolicy | None
    idempotent: bool
    started: float
    rng: random.Random = field(default_factory=random.Random)
    current: int = field(init=False)
    rounds: int = field(init=False, default=1)
    _tried: int = field(init=False, default=1)  # servers tried this round
    _answered: bool = field(init=False, default=False)  # someone is there this round

    def __post_init__(self) -> None:
        self.current = self.first

    def after(
        self, outcome: Outcome, retry_after: float | None, now: float
    ) -> tuple[int, float] | None:
        """(server index, seconds to pause first) for the next try, or None."""
        if outcome is Outcome.FINAL or (outcome is Outcome.LOST and not self.idempotent):
            return None
        if outcome is Outcome.LIMITED:
            return self._pause(retry_after, now, same_server=True)
        if outcome is not Outcome.REFUSED:
            self._answered = True
        if self._tried < self.servers:  # someone else may answer: at once
            self._tried += 1
            self.current = (self.current + 1) % self.servers
            return self.current, 0.0
        if not self._answered:
            return None  # every server refused: nobody to wait for
        return self._pause(retry_after, now, same_server=False)

    def _pause(
        self, retry_after: float | None, now: float, *, same_server: bool
    ) -> tuple[int, float] | None:
        if self.policy is None or self.rounds >= self.policy.attempts:
            return None
        delay = max(retry_after or 0.0, self.policy.backoff(self.rounds - 1, self.rng))
        if now + delay > self.started + self.policy.budget:
            return None
        self.rounds += 1
        self._tried, self._answered = 1, False
        if not same_server:
            self.current = (self.current + 1) % self.servers
        return self.current, delay


class TryFailed(Exception):
    """One try's failure: the error to report and what it allows next."""

    def __init__(self, error: ApiClientError, outcome: Outcome) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome


def answer_outcome(status: int, headers: Mapping[str, str] | None = None) -> Outcome:
    if status == 503 and (headers or {}).get(OUTCOME_HEADER) == "unknown":
        return Outcome.LOST  # the server may have acted on it
    return {429: Outcome.LIMITED, 503: Outcome.BUSY}.get(status, Outcome.FINAL)


def connection_outcome(e: aiohttp.ClientError) -> Outcome:
    """No connection at all (never sent) or one that ended without an answer."""
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return Outcome.FINAL  # another server would not make this one trusted
    if isinstance(e, aiohttp.ClientConnectorError):
        return Outcome.REFUSED
    return Outcome.LOST


def reported_error(failures: list[TryFailed]) -> ApiClientError:
    """The error a request that failed on every try raises: the last one, but
    a server's answer (say 503 no_leader) over a later refusal, and one
    error naming every server when none could be reached."""
    last = failures[-1].error
    if failures[-1].outcome is not Outcome.REFUSED or not isinstance(last, ApiUnreachable):
        return last
    answers = [f.error for f in failures if f.error.status != 0]
    if answers:
        return answers[-1]
    addresses = list(
        dict.fromkeys(f.error.address for f in failures if isinstance(f.error, ApiUnreachable))
    )
    if len(addresses) > 1:
        return ApiUnreachable(", ".join(addresses), last.reason)
    return last
