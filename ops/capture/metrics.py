"""Prometheus metrics of the capture service, served from its process (scraped while it runs).

The lag is computed at scrape time from when capture last had every committed change stored:
a capture stuck on an unreachable store, or on a database that went away, shows it growing.
Labels never carry names, paths or URLs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

from ops.capture.service import Progress


class CaptureMetrics:
    def __init__(self, progress: Progress) -> None:
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None

        def gauge(name: str, documentation: str, value: Callable[[], float]) -> None:
            Gauge(name, documentation, registry=self.registry).set_function(value)

        gauge("tasklets_capture_lag_seconds", "How old the oldest change not yet stored in a "
              "change segment may be (seconds since capture last had every change stored)",
              lambda: _number(progress.lag_seconds()))
        gauge("tasklets_capture_retained_wal_bytes", "WAL the server keeps for the capture "
              "slot (from its restart LSN)", lambda: _number(progress.retained_wal_bytes))
        gauge("tasklets_capture_last_flush_timestamp_seconds", "When capture last stored a "
              "change segment (Unix time; 0: none since start)",
              lambda: progress.last_flush.timestamp() if progress.last_flush else 0.0)
        gauge("tasklets_capture_cycle_seconds", "How long the last cycle (read the slot, store, "
              "advance) took", lambda: _number(progress.cycle_seconds))
        gauge("tasklets_capture_segments", "Change segments stored since start",
              lambda: progress.segments)
        gauge("tasklets_capture_transactions", "Transactions stored since start",
              lambda: progress.transactions)

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port in a background thread; the port it listens on."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _number(value: float | int | None) -> float:
    return math.nan if value is None else float(value)
