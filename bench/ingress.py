"""Webhook ingress: verified, acknowledged deliveries per second, and time to acknowledge.

DESIGN §8: on one process, coder acknowledges at least 1.5x the deliveries per second Probot does
on the same machine and payloads, and its p99 time to acknowledge at 200 deliveries/s is 10 ms or
less. Every server runs in its own process and is driven by the same load generator in this
process (autocannon for throughput, an open-loop raw-HTTP client for latency at a fixed
rate), with GitHub's published `issues.labeled` example, signed, each with a fresh delivery id.
Our stack (the aiohttp floor and coder) runs on asyncio's loop and, where it is installed, on
uvloop, which `coder serve` uses: each "vs floor" ratio compares the same loop with itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.server import event_loop_factory

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = ROOT / "tests/fixtures/github/webhook-examples/issues.labeled.json"
NODE_DIR = ROOT / "bench/node"
WEBHOOK_PATH = "/api/github/webhooks"
SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway secret for loopback only
CONCURRENCY = 32
ROUND_SECONDS = 5
ROUNDS = 3
RATE = 200
RATE_SECONDS = 5
STARTUP_TIMEOUT = 60
BAR_THROUGHPUT_VS_PROBOT = 1.5
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "GitHub-Hookshot/bench",
    "X-GitHub-Event": "issues",
    "X-GitHub-Hook-ID": "1",
}
BAR_P99_MS = 10.0
FLOOR = "aiohttp (floor)"
CODER = "coder"
PROBOT = "probot 14"
ASYNCIO = "asyncio"
UVLOOP = "uvloop"


@dataclass
class Result:
    """What one server managed, on which event loop."""

    name: str
    loop: str
    per_second: float
    cpu_us: float | None  # the server's own CPU time per delivery; None where /proc is missing
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class _Samples:
    per_second: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    errors: int = 0


class Server:
    """A webhook server in a child process that prints `ready <port>`."""

    def __init__(self, name: str, loop: str, argv: list[str], cwd: Path) -> None:
        self.name = name
        self.loop = loop
        self._argv = argv
        self._cwd = cwd
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Server:  # noqa: PYI034 - not subclassed
        self._process = subprocess.Popen(
            self._argv, cwd=self._cwd, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("ready "):
            self.__exit__()
            raise RuntimeError(f"{self.name} did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=STARTUP_TIMEOUT)

    @property
    def url(self) -> str:
        """The webhook URL."""
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def cpu_seconds(self) -> float | None:
        """Return the CPU time the server has used so far, or None where /proc cannot tell."""
        assert self._process is not None
        try:
            stat = Path(f"/proc/{self._process.pid}/stat").read_text()
        except OSError:
            return None
        # utime and stime are fields 14 and 15 of proc(5); the name before them may hold spaces.
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _node() -> tuple[str, str] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    if not (NODE_DIR / "node_modules/autocannon").is_dir():
        print("installing the Node side of the bench (npm ci: probot, autocannon)...", flush=True)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)
    return node, npm


def _load(node: str, url: str, seconds: int, rate: int | None = None) -> dict[str, float]:
    argv = [node, str(NODE_DIR / "load.mjs"), url, SECRET, str(PAYLOAD)]
    argv += [str(CONCURRENCY), str(seconds)] + ([str(rate)] if rate else [])
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough to POST a delivery.

    aiohttp's client costs about 2 ms a request here, which would swamp what we measure; a
    pre-rendered request over a raw stream costs tens of microseconds.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        """Connect to the server on loopback."""
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, head: bytes, body: bytes) -> int:
        """Send one request; return the status once the whole response is read."""
        delivery = str(uuid.uuid4()).encode()
        self._writer.write(head + b"X-GitHub-Delivery: " + delivery + b"\r\n\r\n" + body)
        status_line = await self._reader.readline()
        length = 0
        while (line := await self._reader.readline()) not in {b"\r\n", b""}:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self._reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        """Close the connection."""
        self._writer.close()


async def _paced(port: int) -> tuple[list[float], int]:
    """Send RATE deliveries/s for RATE_SECONDS; time each from send to the end of the response.

    asyncio wakes a sleeper up to a millisecond late (epoll's resolution), so timing from the due
    time would charge the generator's lateness to the server. A pool of connections keeps
    requests from queueing behind each other in the client, so nothing is hidden either.
    """
    body = json.dumps(json.loads(PAYLOAD.read_bytes())).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {**HEADERS, "X-Hub-Signature-256": signature, "Content-Length": str(len(body))}
    head = f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(CONCURRENCY):
        pool.put_nowait(await _Connection.open(port))
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(due: float) -> None:
        nonlocal errors
        del due
        connection = await pool.get()
        sent = loop.time()
        status = await connection.post(head.encode(), body)
        latencies.append((loop.time() - sent) * 1000)
        errors += not 200 <= status < 300
        pool.put_nowait(connection)

    tasks = []
    for i in range(RATE * RATE_SECONDS):
        due = start + i / RATE
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, errors


def measure(node: str, servers: list[Server]) -> list[Result]:
    """Warm every server up, then measure throughput and latency, the servers taking turns.

    Taking turns round by round spreads whatever else the machine is doing over every server
    alike, instead of charging it to whichever one was being measured at the time; each figure
    is the median of its rounds.
    """
    for server in servers:
        warm = _load(node, server.url, 1)
        if warm["total"] == 0 or warm["errors"]:
            raise RuntimeError(f"{server.name} refused correctly signed deliveries: {warm}")
    samples = {id(server): _Samples() for server in servers}
    for _ in range(ROUNDS):
        for server in servers:
            sample, before = samples[id(server)], server.cpu_seconds()
            figures = _load(node, server.url, ROUND_SECONDS)
            after = server.cpu_seconds()
            sample.per_second.append(figures["per_second"])
            sample.errors += int(figures["errors"])
            if before is not None and after is not None and figures["total"]:
                sample.cpu_us.append((after - before) / figures["total"] * 1e6)
    # This machine's scheduler adds rare multi-millisecond stalls to any process; the median of
    # several paced runs keeps one stall from deciding the p99.
    for _ in range(ROUNDS):
        for server in servers:
            sample = samples[id(server)]
            latencies, paced_errors = asyncio.run(_paced(server.port))
            quantiles = statistics.quantiles(latencies, n=100)
            sample.p50s.append(quantiles[49])
            sample.p99s.append(quantiles[98])
            sample.errors += paced_errors
    results = []
    for server in servers:
        sample = samples[id(server)]
        cpu_us = statistics.median(sample.cpu_us) if sample.cpu_us else None
        results.append(
            Result(
                server.name,
                server.loop,
                statistics.median(sample.per_second),
                cpu_us,
                statistics.median(sample.p50s),
                statistics.median(sample.p99s),
                sample.errors,
            )
        )
    return results


def _write_key(directory: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "bench-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def _loops() -> list[str]:
    """The event loops to measure our stack on: asyncio's, and uvloop's where it is installed."""
    return [ASYNCIO] if event_loop_factory() is None else [ASYNCIO, UVLOOP]


def run() -> list[Result]:
    """Measure every server; return their results."""
    node = _node()
    if node is None:
        raise SystemExit("make bench needs node and npm (the load generator is autocannon)")
    with tempfile.TemporaryDirectory() as tmp:
        key = _write_key(Path(tmp))
        python = [sys.executable, "-m", "bench.ingress_server"]
        # Our stack on each loop, so every ratio compares like with like (`report`).
        servers = [
            (name, loop, [*python, kind, str(key), SECRET, loop])
            for name, kind in ((FLOOR, "aiohttp"), (CODER, "coder"))
            for loop in _loops()
        ]
        servers.append(
            (PROBOT, "node", [node[0], str(NODE_DIR / "server.mjs"), "0", str(key), SECRET])
        )
        with contextlib.ExitStack() as running:
            started = [
                running.enter_context(Server(name, loop, argv, ROOT))
                for name, loop, argv in servers
            ]
            names = ", ".join(f"{server.name} on {server.loop}" for server in started)
            print(f"measuring {names}, taking turns...", flush=True)
            return measure(node[0], started)


def report(results: list[Result]) -> list[str]:
    """Render the results and the DESIGN §8 bars as lines of text.

    "vs floor" divides by the aiohttp floor measured on the same loop in the same run (Probot's
    by the asyncio floor). The bars are judged for coder as `coder serve` runs it: on uvloop
    where it is installed.
    """
    floors = {r.loop: r for r in results if r.name == FLOOR}
    coders = {r.loop: r for r in results if r.name == CODER}
    probot = next(r for r in results if r.name == PROBOT)
    header = f"{'server':<18}{'loop':<9}{'deliveries/s':>13}{'vs floor':>10}{'cpu us':>8}"
    lines = [header + f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
    for r in results:
        floor = floors.get(r.loop, floors[ASYNCIO])
        cpu = "-" if r.cpu_us is None else f"{r.cpu_us:.0f}"
        lines.append(
            f"{r.name:<18}{r.loop:<9}{r.per_second:>13.0f}{r.per_second / floor.per_second:>10.2f}"
            f"{cpu:>8}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}"
        )
    lines.append(
        "cpu us: the server's own CPU time per delivery under full load (median of rounds)"
    )
    served = UVLOOP if UVLOOP in coders else ASYNCIO
    lines.append(f"`coder serve` runs on {served} here; the bars are judged on it")
    if probot.per_second:
        for loop, coder in coders.items():
            ratio = coder.per_second / probot.per_second
            verdict = "meets" if ratio >= BAR_THROUGHPUT_VS_PROBOT else "MISSES"
            judged = (
                f" — {verdict} the bar of {BAR_THROUGHPUT_VS_PROBOT}x" if loop == served else ""
            )
            lines.append(f"coder ({loop})/probot throughput: {ratio:.2f}x{judged}")
    coder, floor = coders[served], floors[served]
    verdict = "meets" if coder.p99_ms <= BAR_P99_MS else "MISSES"
    lines.append(
        f"coder ({served}) p99 ack at {RATE}/s: {coder.p99_ms:.2f} ms "
        f"({coder.p99_ms / floor.p99_ms:.2f}x its floor) — {verdict} the bar of {BAR_P99_MS} ms"
    )
    return lines
