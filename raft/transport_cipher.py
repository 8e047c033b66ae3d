"""The cipher pysyncobj's transport uses for every message between servers
(raft.pysyncobj_glue installs it in place of pysyncobj's Fernet)."""

from __future__ import annotations

import base64
import logging
import os
import struct
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("heroctld.raft")


class TransportCipher:
    """pysyncobj's encryptor, keyed by us and loud about bad keys.

    pysyncobj encrypts every message with Fernet (a key from PBKDF2 with a
    fixed salt) and drops a connection that fails to decrypt without a word.
    We give it AES-256-GCM with a key derived from the cluster key (HKDF,
    raft.keys): one C call each way instead of Fernet's base64, HMAC and a
    new CBC context per message (≈50 µs less per message received). The
    timestamp pysyncobj checks for replays travels in the clear but is
    authenticated (associated data). A peer with another key is logged, so
    an operator sees why a node cannot join.
    """

    _last_warning = 0.0
    _HEADER = struct.Struct(">BQ")  # version, timestamp
    _VERSION = 1

    def __init__(self, key: str | bytes) -> None:
        self._aead = AESGCM(base64.urlsafe_b64decode(key))
        self._opened: tuple[bytes, bytes] | None = None  # (message, plaintext)

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        header = self._HEADER.pack(self._VERSION, max(0, int(current_time)))
        nonce = os.urandom(12)
        return header + nonce + self._aead.encrypt(nonce, data, header)

    def _open(self, data: bytes) -> tuple[int, bytes]:
        size = self._HEADER.size
        try:
            version, stamp = self._HEADER.unpack_from(data)
            if version != self._VERSION:
                raise InvalidTag
            plain = self._aead.decrypt(data[size : size + 12], data[size + 12 :], data[:size])
        except (InvalidTag, struct.error):
            now = time.monotonic()
            if now - TransportCipher._last_warning > 5.0:
                TransportCipher._last_warning = now
                log.error(
                    "raft: rejected a peer message that failed authentication: "
                    "the peer uses a different cluster key"
                )
            raise
        return stamp, plain

    def extract_timestamp(self, data: bytes) -> int:
        # pysyncobj asks for the timestamp, then for the plaintext: open once.
        stamp, plain = self._open(data)
        self._opened = (data, plain)
        return stamp

    def decrypt(self, data: bytes) -> bytes:
        opened, self._opened = self._opened, None
        if opened is not None and opened[0] is data:
            return opened[1]
        return self._open(data)[1]
