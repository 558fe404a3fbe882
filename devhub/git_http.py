"""Bridge an aiohttp request to `git http-backend`, which speaks CGI.

https://git-scm.com/docs/git-http-backend: the backend reads the request from CGI variables
and stdin and writes a `Status:`/header block, a blank line, then the body to stdout. The
body is streamed both ways, so large pushes and clones never sit in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from devhub.git_types import ZERO_SHA, RefUpdate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

LOG = logging.getLogger(__name__)
UPLOAD_PACK = "git-upload-pack"
RECEIVE_PACK = "git-receive-pack"
SERVICES = (UPLOAD_PACK, RECEIVE_PACK)
CHUNK_SIZE = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
# Framing is aiohttp's job; the CGI's own framing headers must not be copied.
SKIPPED_CGI_HEADERS = frozenset({"status", "transfer-encoding", "connection", "content-length"})
# Only refs a GitHub user can push to; anything else is hidden from receive-pack, which then
# answers "deny updating a hidden ref" exactly as GitHub does for refs/pull/*. upload-pack hides
# nothing, so `git fetch <repo> refs/pull/<n>/head` works and ls-remote lists them, as on GitHub.
PUSHABLE_PREFIXES = ("refs/heads/", "refs/tags/")
PUSHABLE_REF_CONFIG: tuple[tuple[str, str], ...] = (
    ("receive.hideRefs", "refs/"),
    *(("receive.hideRefs", f"!{prefix}") for prefix in PUSHABLE_PREFIXES),
)


def requested_service(tail: str, query: Mapping[str, str]) -> str | None:
    """Name the smart-HTTP service a request is for, or None for anything else (dumb HTTP)."""
    if tail == "info/refs":
        service = query.get("service")
        return service if service in SERVICES else None
    return tail if tail in SERVICES else None


def backend_config(*, allow_push: bool) -> list[tuple[str, str]]:
    """Return the config the backend runs with: which services, filters, hidden refs."""
    return [
        ("http.uploadpack", "true"),
        ("http.receivepack", "true" if allow_push else "false"),
        # actions/checkout fetches a single sha, and partial clones use filters; GitHub
        # allows both.
        ("uploadpack.allowAnySHA1InWant", "true"),
        ("uploadpack.allowFilter", "true"),
        *PUSHABLE_REF_CONFIG,
    ]


def cgi_env(
    base: Mapping[str, str],
    request: web.Request,
    *,
    project_root: Path,
    path_info: str,
    remote_user: str,
) -> dict[str, str]:
    """Build the CGI environment for one request."""
    env = dict(base)
    env.update(
        {
            "GIT_PROJECT_ROOT": str(project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path_info,
            "QUERY_STRING": request.query_string,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_USER": remote_user,
            "REMOTE_ADDR": request.remote or "",
        }
    )
    # Protocol v2 is negotiated through this header: https://git-scm.com/docs/protocol-v2
    if protocol := request.headers.get("Git-Protocol"):
        env["GIT_PROTOCOL"] = protocol
    return env


def text_response(status: int, message: str) -> web.Response:
    """Answer with a plain-text message, which git prints to the user as `remote: ...`."""
    return web.Response(status=status, text=f"{message}\n", content_type="text/plain")


def ref_updates(before: Mapping[str, str], after: Mapping[str, str]) -> list[RefUpdate]:
    """Compare two ref snapshots and list what a push moved, sorted by ref name.

    Only pushable refs count: devhub moves hidden ones (`refs/pull/N/head`) itself, meanwhile.
    """
    return [
        RefUpdate(ref, before.get(ref, ZERO_SHA), after.get(ref, ZERO_SHA))
        for ref in sorted(before.keys() | after.keys())
        if before.get(ref) != after.get(ref) and ref.startswith(PUSHABLE_PREFIXES)
    ]


async def run_cgi(
    request: web.Request,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    before_eof: Callable[[], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """Run the CGI program, streaming the request body in and its output back out.

    The program has exited and `before_eof` has run before the response's last data chunk is
    sent: git closes the connection as soon as it has the whole response, and aiohttp may then
    cancel the handler (`handler_cancellation`, always on in aiohttp's test server).
    """
    first = await request.content.read(CHUNK_SIZE)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, **_encoding_env(request, first)},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    feeder = asyncio.create_task(_feed(request, proc.stdin, first))
    stderr = asyncio.create_task(proc.stderr.read())
    try:
        head = await _read_head(proc.stdout)
        if head is None:
            await proc.wait()
            LOG.error(
                "git http-backend wrote no headers: %s", (await stderr).decode(errors="replace")
            )
            return text_response(500, "git http-backend failed")
        status, reason, headers = head
        response = web.StreamResponse(status=status, reason=reason or None)
        for name, value in headers:
            response.headers.add(name, value)
        await response.prepare(request)
        # Hold the last chunk back until `before_eof` has run: it ends git's report, and git
        # returns from `git push` the moment it has read it, so whatever `before_eof` does (devhub
        # moves pull-request heads there) is visible by the time the pusher's next call arrives.
        held = b""
        while chunk := await proc.stdout.read(CHUNK_SIZE):
            if held:
                await response.write(held)
            held = chunk
        await feeder
        code = await proc.wait()
        if code != 0:
            LOG.warning(
                "git http-backend exited %s: %s", code, (await stderr).decode(errors="replace")
            )
        if before_eof is not None:
            await before_eof()
        if held:
            await response.write(held)
        await response.write_eof()
        return response
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for task in (feeder, stderr):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task


def _encoding_env(request: web.Request, first: bytes) -> dict[str, str]:
    # git gzips large request bodies (Content-Encoding: gzip) and http-backend can inflate
    # them, but aiohttp's server already inflates request bodies unless it was built with
    # auto_decompress=False. Tell the backend only when the bytes really are still gzip.
    encoding = request.headers.get("Content-Encoding", "")
    if encoding in GZIP_ENCODINGS and first.startswith(GZIP_MAGIC):
        return {"HTTP_CONTENT_ENCODING": encoding}
    return {}


async def _feed(request: web.Request, stdin: asyncio.StreamWriter, first: bytes) -> None:
    try:
        stdin.write(first)
        await stdin.drain()
        async for chunk in request.content.iter_chunked(CHUNK_SIZE):
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the backend answered (e.g. with an error) without reading everything
    finally:
        stdin.close()


async def _read_head(stdout: asyncio.StreamReader) -> tuple[int, str, list[tuple[str, str]]] | None:
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    while True:
        line = await stdout.readline()
        if not line:
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, reason, headers
        name, _, value = text.partition(":")
        value = value.strip()
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            status = int(code)
        elif name.lower() not in SKIPPED_CGI_HEADERS:
            headers.append((name, value))
