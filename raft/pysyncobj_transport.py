"""The raft port's connections: a frame is refused before it is buffered.

pysyncobj's `TcpConnection` reads every frame whole (its length prefix allows
2 GiB) into a `bytes` it extends by copying, on the tick thread, and only then
decrypts it: anyone who can reach the raft port can make a server buffer
gigabytes, quadratically. `GuardedConnection` reads the 4-byte length first
and drops the connection when the frame is larger than allowed:

- before the connection's first frame has authenticated (opened with the
  cluster key, raft.transport_cipher), `HANDSHAKE_FRAME` bytes: the first
  frame of a peer is its 32-byte connection key, so a peer without the key
  gets no more than that buffered, and no more than the connection timeout
  to send it (pysyncobj never times out a connection that sends nothing);
- after that, the configured `max_frame` (raft.config).

The buffer is a `bytearray` read into with a bounded size and consumed from
the front (no copy of what remains). `GuardedTransport` is pysyncobj's TCP
transport with these connections, each given the limit.
"""

from __future__ import annotations

import errno
import logging
import struct
import time
import zlib
from typing import Any

import pysyncobj.pickle as pickle
import pysyncobj.tcp_server
import pysyncobj.transport
from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

from raft.config import DEFAULT_MAX_FRAME

log = logging.getLogger("heroctld.raft")

HANDSHAKE_FRAME = 4096  # bytes: a connection key is ~100 once pickled, compressed and sealed
_LENGTH = struct.Struct("i")  # pysyncobj's length prefix (native, signed)
_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK)


class GuardedConnection(TcpConnection):  # type: ignore[misc]
    """pysyncobj's connection, refusing frames above its limit unread."""

    max_frame = DEFAULT_MAX_FRAME  # GuardedTransport sets each connection's
    _last_warning = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._reset()
        super().__init__(*args, **kwargs)

    def _reset(self) -> None:
        self._inbox = bytearray()
        self._authenticated = False
        self._opened_at = time.monotonic()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed into a message."""
        return len(self._inbox)

    def connect(self, host: str, port: int) -> bool:
        self._reset()
        return bool(super().connect(host, port))

    def disconnect(self) -> None:
        super().disconnect()
        self._inbox = bytearray()

    def _limit(self) -> int:
        return self.max_frame if self._authenticated else HANDSHAKE_FRAME

    # pysyncobj calls these through its private names.
    def _TcpConnection__processRead(self) -> bool:  # noqa: N802
        """Read what fits under the limit; False once nothing more should be read now."""
        inbox = self._inbox
        limit = self._limit()
        room = limit + _LENGTH.size - len(inbox)
        if self.expired(time.monotonic()):
            self.refuse("did not authenticate in time")
            return False
        if room <= 0:
            return False  # a whole frame is buffered: parse it first
        sock = self._TcpConnection__socket
        try:
            incoming = sock.recv(min(self._TcpConnection__recvBufferSize, room))
        except OSError as e:
            if e.errno not in _RETRY:
                self.disconnect()
            return False
        if not incoming:
            self.disconnect()
            return False
        inbox += incoming
        return len(inbox) < _LENGTH.size or self._frame_size(limit) is not None

    def _TcpConnection__processParseMessage(self) -> Any:  # noqa: N802
        inbox = self._inbox
        size = self._frame_size(self._limit())
        if size is None or len(inbox) < _LENGTH.size + size:
            return None
        with memoryview(inbox) as view:  # one copy, not two
            data = bytes(view[_LENGTH.size : _LENGTH.size + size])
        try:
            if self.encryptor:
                stamp = self.encryptor.extract_timestamp(data)
                if stamp < self.recvLastTimestamp:
                    raise ValueError("replayed frame")
                self.recvLastTimestamp = stamp
                data = self.encryptor.decrypt(data)
            message = pickle.loads(zlib.decompress(data))
            if self.recvRandKey:
                key, message = message
                if key != self.recvRandKey:
                    raise ValueError("frame of another connection")
        except Exception:  # noqa: BLE001 - whatever a peer sent, the answer is to hang up
            self.disconnect()
            return None
        del inbox[: _LENGTH.size + size]
        self._authenticated = True
        return message

    def _frame_size(self, limit: int) -> int | None:
        """The length of the frame at the front, None if unknown yet or refused."""
        if len(self._inbox) < _LENGTH.size:
            return None
        (size,) = _LENGTH.unpack_from(self._inbox)
        if not 0 <= size <= limit:
            self.refuse(f"sent a frame of {size} bytes (the limit is {limit})")
            return None
        return int(size)

    def expired(self, now: float) -> bool:
        """Connected longer than the connection timeout without authenticating."""
        timeout = float(self._TcpConnection__timeout)
        return not self._authenticated and now - self._opened_at > timeout

    def refuse(self, why: str) -> None:
        """Hang up on the peer; says why (one warning per 5 s at most, for all)."""
        try:
            name = self._TcpConnection__socket.getpeername()
        except (OSError, AttributeError):
            name = None
        peer = f"{name[0]}:{name[1]}" if isinstance(name, tuple) else "a peer"
        self.disconnect()
        now = time.monotonic()
        if now - GuardedConnection._last_warning > 5.0:
            GuardedConnection._last_warning = now
            stage = "" if self._authenticated else " before authenticating"
            log.warning("raft: dropped the connection of %s, which%s %s", peer, stage, why)


# pysyncobj makes its connections by these names: in its server (accepted
# connections) and its transport (the ones it dials).
pysyncobj.tcp_server.TcpConnection = GuardedConnection
pysyncobj.transport.TcpConnection = GuardedConnection


class GuardedTransport(TCPTransport):  # type: ignore[misc]
    """pysyncobj's TCP transport whose connections refuse frames above `max_frame`."""

    def __init__(self, sync: Any, self_node: Any, other_nodes: Any, max_frame: int) -> None:
        self._max_frame = max_frame
        super().__init__(sync, self_node, other_nodes)

    def _onTick(self) -> None:  # noqa: N802
        super()._onTick()
        if self._unknownConnections:  # accepted, not yet a known peer: usually none
            now = time.monotonic()
            for conn in list(self._unknownConnections):
                if conn.expired(now):
                    conn.refuse("did not authenticate in time")

    def _onNewIncomingConnection(self, conn: GuardedConnection) -> None:  # noqa: N802
        conn.max_frame = self._max_frame
        super()._onNewIncomingConnection(conn)

    def addNode(self, node: Any) -> None:  # noqa: N802
        super().addNode(node)
        conn = self._connections.get(node)
        if conn is not None:
            conn.max_frame = self._max_frame
