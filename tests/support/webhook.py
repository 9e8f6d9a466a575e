"""A real HTTP receiver on 127.0.0.1 that records every request (webhooks, Healthchecks pings,
Pushgateway pushes), and a scraper for /metrics over a plain socket."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    status: int = 200  # what it answers (set 500 to play a failing endpoint)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[str]:
        with self.lock:
            return [r.json["event"] for r in self.requests if r.method == "POST"]

    def wait_for(self, condition: Callable[[], bool], seconds: float = 60) -> None:
        """Wait (bounded) until the condition on what was received holds."""
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not received in {seconds}s; got {self.requests!r}")
            time.sleep(0.05)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A recording HTTP server on a free port of 127.0.0.1, stopped afterwards."""
    state: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            got = state[0]
            with got.lock:
                got.requests.append(Received(self.command, self.path, body))
            self.send_response(got.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_GET = _record

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(Receiver(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def scrape(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """GET /metrics over a socket; {sample name with labels: value} (no comments)."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"200", head
    return parse_metrics(body.decode())


def parse_metrics(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
