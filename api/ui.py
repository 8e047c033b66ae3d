"""The web panel's files at /ui/: the single-page app that `make install` builds.

The app (sources in ui/, built by Vite into ui/dist/) talks only to the public
/v1 API, so these routes serve static files and need no credential
(api.security.middleware lets GET /ui/... through). Client routes
(/ui/jobs/web, ...) get index.html; hashed files under /ui/assets/ are cached
for a year (their names change with their content), index.html is revalidated
on every load. Text files go out gzip-compressed when the browser accepts it
(compressed once, kept in memory). Without a build the panel answers 503 with
a page that says how to build it; the daemon runs as usual.

`GET /` redirects to /ui/ (so https://manage.<domain>/ opens the panel).
`HEROCTL_UI_DIR` points at another build (tests, packagers).
"""

from __future__ import annotations

import gzip
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()

_DEFAULT_DIR = Path(__file__).resolve().parent.parent / "ui" / "dist"
_COMPRESSIBLE = (".html", ".js", ".css", ".svg", ".json", ".txt", ".map")
_IMMUTABLE = "public, max-age=31536000, immutable"
# default-src 'self': no CDN, no inline script; inline style attributes are
# what the charting library sets.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HeroCtl panel not built</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>The web panel is not built</h1>
<p>This server has no build of the panel ({where}). Build it with
<code>make install</code> (it needs Node.js and npm), or set
<code>HEROCTL_UI_DIR</code> to a built panel. The API at <code>/v1/</code> works as usual.</p>
</body></html>
"""


def ui_dir() -> Path:
    """Where the built panel is (HEROCTL_UI_DIR, else ui/dist beside the sources)."""
    configured = os.environ.get("HEROCTL_UI_DIR")
    return Path(configured).resolve() if configured else _DEFAULT_DIR


@dataclass(frozen=True)
class _File:
    mtime_ns: int
    body: bytes
    gzipped: bytes | None
    content_type: str


_files: dict[Path, _File] = {}


def _load(path: Path) -> _File | None:
    """The file's bytes (and gzip of them), cached until it changes on disk."""
    try:
        stat = path.stat()
    except OSError:
        return None
    cached = _files.get(path)
    if cached is not None and cached.mtime_ns == stat.st_mtime_ns:
        return cached
    body = path.read_bytes()
    gz = None
    if path.suffix in _COMPRESSIBLE and len(body) > 256:
        gz = gzip.compress(body, compresslevel=9, mtime=0)
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
        ctype += "; charset=utf-8"
    loaded = _File(stat.st_mtime_ns, body, gz, ctype)
    _files[path] = loaded
    return loaded


def _respond(request: web.Request, f: _File, cache: str) -> web.Response:
    headers = {
        "Cache-Control": cache,
        "Content-Type": f.content_type,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    body = f.body
    if f.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = f.gzipped
        headers["Content-Encoding"] = "gzip"
    if f.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = _CSP
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
    return web.Response(body=body, headers=headers)


def _not_built(root: Path) -> web.Response:
    return web.Response(
        status=503,
        text=_NOT_BUILT.format(where=f"no {root / 'index.html'}"),
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Retry-After": "60"},
    )


@routes.get("/")
async def site_root(request: web.Request) -> web.StreamResponse:
    """A browser at a server's root, or at https://manage.<domain>/ (the ingress
    sends that host to the API), lands on the panel. Not permanent: the root
    may serve something else one day."""
    raise web.HTTPFound("/ui/")


@routes.get("/ui")
async def panel_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/ui/")


@routes.get("/ui/{tail:.*}")
async def panel(request: web.Request) -> web.StreamResponse:
    root = ui_dir()
    tail = request.match_info["tail"]
    if tail:
        target = (root / tail).resolve()
        if target.is_relative_to(root) and target.is_file():
            f = _load(target)
            if f is not None:
                immutable = tail.startswith("assets/")
                return _respond(request, f, _IMMUTABLE if immutable else "no-cache")
        if tail.startswith("assets/"):  # a missing asset is a 404, not the app
            raise web.HTTPNotFound()
    index = _load(root / "index.html")
    if index is None:
        return _not_built(root)
    return _respond(request, index, "no-cache")
