"""A stdlib-only HTTP and websocket echo server, run as an exec-driver task.

The ingress end-to-end test (tests/integration/test_ingress_https.py) needs
an upstream that shows what the ingress forwarded: the busybox image's
``httpd`` can neither echo request headers nor speak websockets. This file is
copied to a world-readable directory and run by Debian's ``/usr/bin/python3``
as ``nobody`` (the exec driver's default user), so it imports nothing but the
standard library.

* ``GET /headers``: the request's headers as a JSON object (a repeated
  header's values joined with ``, ``, as a proxy would see them).
* ``GET /echo`` with ``Upgrade: websocket``: the RFC 6455 handshake
  (``Sec-WebSocket-Accept``), then every text or binary message comes back
  unmasked, a ping gets its pong, a close is answered and ends the connection.
* anything else: ``HEROCTL_ALLOC_ID`` (who answered).

It listens on ``HEROCTL_IP_HTTP``:``HEROCTL_PORT_HTTP`` (the exec driver's
port variables for a port named ``http``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 1 << 20


def accept_key(client_key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((client_key + WEBSOCKET_GUID).encode()).digest()
    return base64.b64encode(digest).decode()


def read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    """One client frame (opcode, unmasked payload); None at the end of the stream."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    masked = bool(head[1] & 0x80)
    if length == 126:
        (length,) = struct.unpack("!H", stream.read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", stream.read(8))
    if length > MAX_MESSAGE:
        return None
    mask = stream.read(4) if masked else b"\0\0\0\0"
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked server frame."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the ingress's upstream connections expect

    def do_GET(self) -> None:  # noqa: N802 - the name BaseHTTPRequestHandler calls
        if self.path == "/headers":
            names = dict.fromkeys(self.headers.keys())
            doc = {name: ", ".join(self.headers.get_all(name) or []) for name in names}
            self._send(200, "application/json", json.dumps(doc).encode())
        elif self.path == "/echo" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
        else:
            self._send(200, "text/plain", os.environ.get("HEROCTL_ALLOC_ID", "?").encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        if not key:
            self._send(400, "text/plain", b"no Sec-WebSocket-Key")
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True  # the socket is the websocket's from now on
        while (received := read_frame(self.rfile)) is not None:
            opcode, payload = received
            if opcode in (TEXT, BINARY):
                self.wfile.write(frame(opcode, payload))
            elif opcode == PING:
                self.wfile.write(frame(PONG, payload))
            elif opcode == CLOSE:
                self.wfile.write(frame(CLOSE, payload[:2]))
                break
            self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: the task's output is not what the test looks at."""


def main() -> None:
    address = (os.environ.get("HEROCTL_IP_HTTP", "127.0.0.1"), int(os.environ["HEROCTL_PORT_HTTP"]))
    server = ThreadingHTTPServer(address, EchoHandler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
