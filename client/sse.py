"""Reading a `text/event-stream` answer (server-sent events) into (event, data) pairs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

__all__ = ["sse_events"]


async def sse_events(r: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """Parse a `text/event-stream` body into (event, decoded data) pairs."""
    buf = b""
    event, data = "", []
    async for chunk in r.content.iter_any():
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw_line in lines:
            line = raw_line.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    text = "\n".join(data)
                    try:
                        yield event or "message", json.loads(text)
                    except ValueError:
                        yield event or "message", text
                event, data = "", []
            elif line.startswith(":"):
                continue  # a comment (keep-alive ping)
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
