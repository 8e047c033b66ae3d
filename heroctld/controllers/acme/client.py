"""An asyncio ACME (RFC 8555) client for the leader: one account, one order per host.

It wraps certbot's ``acme.client.ClientV2`` (JWS signing, nonces, the
message types) and drives the protocol itself:

* every blocking call runs in a worker thread (``asyncio.to_thread``) under
  one lock, because ``ClientNetwork`` (its nonce pool, its session, the
  account it signs as) is not safe to share between threads; a cancelled
  caller cannot let two requests overlap since the lock is taken in the
  thread;
* polling of authorizations and orders is paced by ``poll_interval`` on the
  event loop rather than acme's fixed one-second sleeps (an issuance against
  a local CA takes a fraction of a second instead of two), bounded by one
  deadline per issuance;
* every failure becomes :class:`AcmeError` carrying the CA's problem
  (``urn:ietf:params:acme:error:...: detail``), never key material.

The account key is the caller's to keep (sealed in the replicated log): with
``account_key_pem=None`` a new EC P-256 key is made and exposed as
:attr:`AcmeClient.account_key_pem`. Registering again with the same key finds
the same account (RFC 8555 §7.3.1), so the key alone identifies it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import josepy
import requests
from acme import challenges as acme_challenges
from acme import client as acme_client
from acme import crypto_util, messages
from acme import errors as acme_errors
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from domain.certificates import CertificateError, check_pair, describe, valid_host

from .challenges import HTTP01, TLS_ALPN01, key_authorization, tls_alpn01_certificate
from .model import (
    AcmeError,
    AcmeSettings,
    ChallengePublisher,
    IssuedCertificate,
    TlsAlpnPublisher,
    publisher_challenge_types,
)

__all__ = ["AcmeClient", "new_private_key_pem"]

log = logging.getLogger(__name__)
T = TypeVar("T")
USER_AGENT = "heroctl-acme"
_PENDING = ("pending", "processing")


class _TlsAlpn01Response(acme_challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer to a tls-alpn-01 challenge; acme 5.x dropped its own."""

    typ = TLS_ALPN01


def new_private_key_pem() -> str:
    """A new EC P-256 private key, PKCS#8 PEM (for accounts and certificates alike)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _account_jwk(key_pem: str) -> tuple[josepy.JWK, josepy.JWASignature]:
    """The account key as a JWK and the JWS algorithm that goes with it (ES256 or RS256)."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise AcmeError("the ACME account key is not an unencrypted PEM private key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return josepy.JWKEC(key=key), josepy.ES256
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return josepy.JWKRSA(key=key), josepy.RS256
    raise AcmeError("the ACME account key must be EC P-256 or RSA of at least 2048 bits")


def _problem(error: messages.Error) -> str:
    """``type: detail`` of an ACME problem document, with its subproblems."""
    text = f"{error.typ}: {error.detail or error.title or error.description or 'no detail'}"
    if error.identifier is not None:
        text = f"{error.identifier.value}: {text}"
    for sub in error.subproblems or ():
        text += f"; {_problem(sub)}"
    return text


class AcmeClient:
    """One ACME account at one CA; ``issue`` may run for several hosts at once."""

    def __init__(self, settings: AcmeSettings, account_key_pem: str | None = None) -> None:
        self.settings = settings
        self.account_key_pem = account_key_pem or new_private_key_pem()
        self._jwk, alg = _account_jwk(self.account_key_pem)
        self._net = acme_client.ClientNetwork(
            key=self._jwk,
            alg=alg,
            verify_ssl=settings.ca_bundle or True,
            user_agent=USER_AGENT,
            timeout=settings.request_timeout,  # type: ignore[arg-type]  # requests takes a float
        )
        self._client: acme_client.ClientV2 | None = None
        self._account_url: str | None = None
        self._thread_lock = threading.Lock()  # ClientNetwork is not thread-safe
        self._account_lock = asyncio.Lock()
        self._closed = False

    @property
    def account_url(self) -> str | None:
        """The account's URL once :meth:`ensure_account` succeeded."""
        return self._account_url

    @property
    def account_thumbprint(self) -> bytes:
        """SHA-256 JWK thumbprint of the account key (the second half of key authorizations)."""
        return self._jwk.public_key().thumbprint(hash_function=hashes.SHA256)

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run a blocking acme call in a thread, turning every failure into AcmeError."""
        if self._closed:
            raise AcmeError("the ACME client is closed")

        def locked() -> T:
            with self._thread_lock:
                return fn()

        try:
            return await asyncio.to_thread(locked)
        except AcmeError:
            raise
        except messages.Error as error:
            raise AcmeError(f"{what}: {_problem(error)}", error.typ) from None
        except requests.RequestException as error:
            raise AcmeError(
                f"{what}: cannot reach the ACME server at {self.settings.directory}: "
                f"{type(error).__name__}: {error}"
            ) from None
        except (acme_errors.Error, josepy.errors.Error, ValueError, KeyError) as error:
            raise AcmeError(f"{what}: {type(error).__name__}: {error}") from None

    async def _acme(self) -> acme_client.ClientV2:
        if self._client is None:
            directory = await self._call(
                "fetching the ACME directory",
                lambda: acme_client.ClientV2.get_directory(self.settings.directory, self._net),
            )
            self._client = acme_client.ClientV2(directory, self._net)
        return self._client

    async def ensure_account(self) -> str:
        """Register (agreeing to the terms of service) or find this key's account; its URL."""
        async with self._account_lock:
            if self._account_url is not None:
                return self._account_url
            client = await self._acme()
            registration = messages.NewRegistration.from_data(
                email=self.settings.email, terms_of_service_agreed=True
            )

            def register() -> str:
                try:
                    return client.new_account(registration).uri
                except acme_errors.ConflictError as existing:  # 200 + Location: already there
                    self._net.account = messages.RegistrationResource(
                        body=messages.Registration(), uri=existing.location
                    )
                    return existing.location

            self._account_url = await self._call("registering the ACME account", register)
            return self._account_url

    async def issue(
        self, host: str, publisher: ChallengePublisher, key_pem: str | None = None
    ) -> IssuedCertificate:
        """One order for ``host``: validate through ``publisher``, finalize, download the chain.

        ``key_pem`` is the certificate's key (a new EC P-256 one when None,
        which a renewal normally wants). Raises AcmeError; whatever was
        published is retracted before this returns or raises.
        """
        started = time.monotonic()
        deadline = started + self.settings.timeout
        host = host.lower()
        if not valid_host(host, allow_wildcard=False):
            raise AcmeError(f"{host!r} is not a host name this client can validate")
        await self.ensure_account()
        client = await self._acme()
        key_pem = key_pem or new_private_key_pem()
        try:
            csr_pem = crypto_util.make_csr(key_pem.encode(), [host])
        except (ValueError, TypeError):
            raise AcmeError("the certificate key is not an unencrypted PEM private key") from None
        order = await self._call(
            f"ordering a certificate for {host}", lambda: client.new_order(csr_pem)
        )
        for authorization in order.authorizations:
            await self._authorize(host, authorization, publisher, deadline)
        chain_pem = await self._finalize(host, order, deadline)
        try:
            # The key and the name, checked at the start of the validity window: a local
            # clock a little behind the CA's must not reject a certificate just issued.
            check_pair(chain_pem, key_pem, host, describe(chain_pem)["not_before"])
        except CertificateError as error:
            raise AcmeError(
                f"the CA returned an unusable certificate for {host}: {error}"
            ) from None
        issued = IssuedCertificate.from_pem(chain_pem, key_pem)
        log.info(
            "issued a certificate for %s (serial %s, until %d) in %.2fs",
            host, issued.serial, issued.not_after, time.monotonic() - started,
        )  # fmt: skip
        return issued

    async def _authorize(
        self,
        host: str,
        authorization: messages.AuthorizationResource,
        publisher: ChallengePublisher,
        deadline: float,
    ) -> None:
        """Answer one authorization's challenge and wait until the CA decides."""
        if authorization.body.status == messages.STATUS_VALID:
            return  # the CA reused an earlier validation
        # Types acme 5.x does not know (tls-alpn-01) come back as UnrecognizedChallenge: read the JSON.
        offered = {c.to_partial_json()["type"]: c for c in authorization.body.challenges}
        wanted = publisher_challenge_types(publisher)
        chosen = next((typ for typ in wanted if typ in offered), None)
        if chosen is None:
            raise AcmeError(
                f"the CA offers {sorted(offered)} for {host}, the publisher answers {list(wanted)}"
            )
        challenge = offered[chosen]
        token = challenge.to_partial_json()["token"]
        key_auth = key_authorization(token, self.account_thumbprint)
        try:
            if chosen == HTTP01:
                await publisher.publish_http01(host, token, key_auth)
                answer: Any = acme_challenges.HTTP01Response(key_authorization=key_auth)
            else:
                if not isinstance(publisher, TlsAlpnPublisher):
                    raise AcmeError(f"the publisher cannot answer {TLS_ALPN01}")
                cert_pem, cert_key_pem = tls_alpn01_certificate(host, key_auth)
                await publisher.publish_tls_alpn01(host, cert_pem, cert_key_pem)
                answer = _TlsAlpn01Response(key_authorization=key_auth)
            client = await self._acme()
            await self._call(
                f"answering the {chosen} challenge for {host}",
                lambda: client.answer_challenge(challenge, answer),
            )
            await self._wait_for_authorization(host, chosen, authorization, deadline)
        finally:
            await self._retract(publisher, chosen, host, token)

    async def _retract(self, publisher: Any, chosen: str, host: str, token: str) -> None:
        try:
            if chosen == HTTP01:
                await publisher.retract_http01(host, token)
            else:
                await publisher.retract_tls_alpn01(host)
        except Exception as error:  # never hide the issuance's own outcome
            log.warning("retracting the %s challenge for %s failed: %r", chosen, host, error)

    async def _wait_for_authorization(
        self, host: str, chosen: str, authorization: messages.AuthorizationResource, deadline: float
    ) -> None:
        client = await self._acme()
        while True:
            authorization, _ = await self._call(
                f"polling the authorization for {host}",
                lambda current=authorization: client.poll(current),
            )
            status = authorization.body.status
            if status == messages.STATUS_VALID:
                return
            if status.name not in _PENDING:
                problems = [
                    _problem(c.error) for c in authorization.body.challenges if c.error is not None
                ]
                detail = "; ".join(problems) or f"the authorization is {status.name}"
                types = [c.error.typ for c in authorization.body.challenges if c.error is not None]
                raise AcmeError(
                    f"validating {host} by {chosen} failed: {detail}", types[0] if types else None
                )
            await self._pause(deadline, f"waiting for the CA to validate {host} by {chosen}")

    async def _pause(self, deadline: float, what: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AcmeError(f"timed out after {self.settings.timeout:g}s {what}")
        await asyncio.sleep(min(self.settings.poll_interval, remaining))

    async def _post_as_get(self, what: str, url: str) -> requests.Response:
        client = await self._acme()
        nonce_url = client.directory["newNonce"]
        return await self._call(what, lambda: self._net.post(url, None, new_nonce_url=nonce_url))

    async def _finalize(self, host: str, order: messages.OrderResource, deadline: float) -> str:
        """Poll the order to ``ready``, finalize with the CSR, poll to ``valid``: the full chain."""
        client = await self._acme()
        finalized = False
        while True:
            response = await self._post_as_get(f"polling the order for {host}", order.uri)
            body = messages.Order.from_json(response.json())
            status = body.status.name
            if status == "invalid":
                problem = _problem(body.error) if body.error else "no detail from the CA"
                raise AcmeError(
                    f"the order for {host} failed: {problem}",
                    body.error.typ if body.error else None,
                )
            if status == "valid" and body.certificate:
                download = await self._post_as_get(
                    f"downloading the certificate for {host}", body.certificate
                )
                return download.text
            if status == "ready" and not finalized:
                await self._call(
                    f"finalizing the order for {host}", lambda: client.begin_finalization(order)
                )
                finalized = True
                continue
            await self._pause(deadline, f"waiting for the order for {host} ({status})")

    async def close(self) -> None:
        """Close the HTTP session; the client cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        session = self._net.session
        await asyncio.to_thread(session.close)
