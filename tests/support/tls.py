"""One trust bundle for every test cluster's CA.

Test clusters run with TLS (the product's default): each makes its own CA.
The harness appends each cluster's ``<data-dir>/tls/ca.pem`` to one bundle
per test process once its servers serve (``trust``), and points
``HEROCTL_CACERT`` at it, so the CLI (in-process or a subprocess), the
client library (``ca_file=bundle()``) and the stdlib client of
tests/support/http.py (``context()``) verify every test server without each
test saying how.
"""

from __future__ import annotations

import atexit
import os
import ssl
import tempfile
from pathlib import Path

ENV = "HEROCTL_CACERT"

_bundle: Path | None = None
_context: tuple[int, ssl.SSLContext] | None = None


def bundle() -> Path:
    """The bundle file (made on first use; ``HEROCTL_CACERT`` names it from then on)."""
    global _bundle
    if _bundle is None:
        fd, name = tempfile.mkstemp(prefix="heroctl-test-cas-", suffix=".pem")
        os.close(fd)
        _bundle = Path(name)
        atexit.register(_bundle.unlink, missing_ok=True)
        os.environ[ENV] = name
    return _bundle


def trust(ca_file: Path) -> None:
    """Add a cluster's CA certificate to the bundle (once)."""
    pem = ca_file.read_text()
    path = bundle()
    if pem not in path.read_text():
        with path.open("a") as f:
            f.write(pem)


def context() -> ssl.SSLContext:
    """A client context trusting every CA in the bundle (rebuilt when it grew)."""
    global _context
    path = bundle()
    size = path.stat().st_size
    if _context is None or _context[0] != size:
        ctx = ssl.create_default_context()
        if size:
            ctx.load_verify_locations(cafile=str(path))
        _context = (size, ctx)
    return _context[1]
