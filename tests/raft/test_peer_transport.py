"""The raft port's connections (raft.pysyncobj_transport): a frame above the
limit, or any frame above a few KiB before the peer authenticated, ends the
connection before it is buffered; a peer with the key passes, large frames
included. A real GuardedConnection on one end of a socket pair, pysyncobj's
poller driving it, frames written by hand on the other end."""

from __future__ import annotations

import base64
import contextlib
import os
import pickle
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import CONNECTION_STATE

from raft.pysyncobj_transport import HANDSHAKE_FRAME, GuardedConnection
from raft.transport_cipher import TransportCipher

KEY = base64.urlsafe_b64encode(os.urandom(32))
LIMIT = 8 * 2**20


class Peer:
    """The receiving connection and the socket a test writes frames into."""

    def __init__(self) -> None:
        ours, self.theirs = socket.socketpair()
        ours.setblocking(False)
        self.poller = createPoller("auto")
        self.received: list[Any] = []
        self.conn = GuardedConnection(
            poller=self.poller,
            socket=ours,
            onMessageReceived=self.received.append,
            timeout=30.0,
            recvBufferSize=2**20,
        )
        self.conn.encryptor = TransportCipher(KEY)
        self.conn.max_frame = LIMIT
        self.most_buffered = 0

    def frame(self, message: Any, key: bytes = KEY) -> bytes:
        data = TransportCipher(key).encrypt_at_time(zlib.compress(pickle.dumps(message), 3), 1)
        return struct.pack("i", len(data)) + data

    def pump(self, until: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            self.poller.poll(0.01)
            self.most_buffered = max(self.most_buffered, self.conn.buffered)

    @property
    def closed(self) -> bool:
        return bool(self.conn.state == CONNECTION_STATE.DISCONNECTED)

    def send_in_background(self, data: bytes) -> threading.Thread:
        def send() -> None:
            with contextlib.suppress(OSError):  # the receiver hung up: what these tests expect
                self.theirs.sendall(data)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def peer() -> Iterator[Peer]:
    GuardedConnection._last_warning = 0.0  # its warning is rate-limited, process-wide
    p = Peer()
    try:
        yield p
    finally:
        p.conn.disconnect()
        p.theirs.close()


def test_a_peer_with_the_key_passes_large_frames_after_its_first(peer: Peer) -> None:
    peer.theirs.sendall(peer.frame(os.urandom(32)))  # pysyncobj's first message: a key
    big = os.urandom(5 * 2**20)  # incompressible: a 5 MiB frame
    peer.send_in_background(peer.frame({"entries": big}))
    peer.pump(lambda: len(peer.received) == 2)
    assert peer.received[1]["entries"] == big and not peer.closed
    assert peer.most_buffered <= LIMIT + 4


def test_an_unauthenticated_frame_is_refused_after_a_few_kib(
    peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    junk = struct.pack("i", 2**20) + os.urandom(2**20)  # 1 MiB, under the limit
    sender = peer.send_in_background(junk)
    peer.pump(lambda: peer.closed)
    assert peer.closed and not peer.received
    assert peer.most_buffered <= HANDSHAKE_FRAME + 4
    sender.join(5)
    assert "before authenticating sent a frame of 1048576 bytes" in caplog.text


def test_a_frame_above_the_limit_is_refused_unread(peer: Peer) -> None:
    peer.theirs.sendall(peer.frame(os.urandom(32)))
    peer.pump(lambda: peer.received)
    peer.send_in_background(struct.pack("i", 2**31 - 1) + os.urandom(4 * 2**20))
    peer.pump(lambda: peer.closed)
    assert peer.closed and peer.most_buffered < 2**20


def test_a_negative_length_is_refused(peer: Peer) -> None:
    peer.theirs.sendall(struct.pack("i", -5) + b"x" * 64)
    peer.pump(lambda: peer.closed)
    assert peer.closed


def test_a_frame_under_another_key_ends_the_connection(peer: Peer) -> None:
    peer.theirs.sendall(peer.frame(os.urandom(32), key=base64.urlsafe_b64encode(os.urandom(32))))
    peer.pump(lambda: peer.closed)
    assert peer.closed and not peer.received


def test_a_peer_that_does_not_authenticate_in_time_is_dropped(peer: Peer) -> None:
    peer.conn._opened_at -= 31.0  # as if it had connected half a minute ago
    peer.theirs.sendall(b"\x10")  # one byte of a frame, the drip of a slow peer
    peer.pump(lambda: peer.closed)
    assert peer.closed
