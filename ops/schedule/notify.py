"""Notifications: a JSON POST per backup event (`start`, `success`, `failure`).

Two kinds of URL, told apart by the URL alone:
- a Healthchecks.io-style ping URL - host `hc-ping.com`, or a path with a `ping` segment
  followed by the check's id (self-hosted Healthchecks: /ping/<uuid>) - gets `start` at
  URL/start, `failure` at URL/fail and `success` at the bare URL, each with the same JSON
  body (Healthchecks shows it);
- any other URL is a webhook: every event is POSTed to it as it is, the event in the body.
A notification that fails (unreachable, slow, not 2xx) is logged and never fails a backup;
each request gives up after NOTIFY_TIMEOUT_SECONDS. Bodies never carry credentials: no
database URL (its host:port/database only), no bucket credentials, and every text that
goes out has the secrets the process knows replaced by *** first (`Redactor`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from ops.core.config import Settings
from ops.core.errors import UsageError
from ops.core.masking import MASK, mask_secrets

NOTIFY_TIMEOUT_SECONDS = 10.0
PING_HOSTS = ("hc-ping.com",)
PING_PATHS = {"start": "/start", "failure": "/fail", "success": ""}
EVENTS = tuple(PING_PATHS)
# Variables whose values are secrets wherever they turn up (a driver's or SDK's message).
SECRET_VARIABLES = (
    "POSTGRES_PASSWORD", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING",
    "SECRET_KEY", "TASKLETS_API_PASSWORD", "BACKUP_NOTIFY_URL",
)
_MIN_SECRET = 4  # shorter values would blank out ordinary words


class Redactor:
    """Replaces every secret this process knows (database passwords, cloud keys, the API's
    secret) with *** in text that leaves it: logs, notifications, metrics."""

    def __init__(self, settings: Settings, *more: str) -> None:
        found = {os.environ.get(name, "") for name in SECRET_VARIABLES} | set(more)
        found |= {_password(url) for url in (settings.database_url,
                                             settings.scratch_database_url)}
        for part in os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "").split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() in ("accountkey", "sharedaccesssignature"):
                found.add(value)
        found.add(settings.backup_notify_url)
        self.secrets = sorted((s for s in found if len(s) >= _MIN_SECRET), key=len,
                              reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return mask_secrets(text)


def _password(url: str) -> str:
    if not url:
        return ""
    try:
        return str(conninfo_to_dict(url).get("password") or "")  # parsed text: a str
    except ProgrammingError:
        return ""


@dataclass
class Notifier:
    url: str
    redact: Redactor
    timeout: float = NOTIFY_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError("the notification URL must be an http(s):// URL",
                             hint="Set BACKUP_NOTIFY_URL (or --notify-url) to a webhook or a "
                             "Healthchecks ping URL.")

    @property
    def ping_style(self) -> bool:
        parts = urlsplit(self.url)
        segments = parts.path.strip("/").split("/")
        return parts.hostname in PING_HOSTS or "ping" in segments[:-1]

    @property
    def shown(self) -> str:
        """Where notifications go, for logs: scheme and host only (a webhook's path or a
        ping URL's uuid is its secret)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}"

    def target(self, event: str) -> str:
        if not self.ping_style:
            return self.url
        return self.url.rstrip("/") + PING_PATHS[event]

    def send(self, event: str, details: dict[str, Any]) -> str | None:
        """POST the event; returns None, or one line saying why it failed (never raises)."""
        body = {"event": event, "host": socket.gethostname(), **details}
        body = {key: self.redact(value) if isinstance(value, str) else value
                for key, value in body.items()}
        try:
            response = httpx.post(self.target(event), json=body, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return f"notification {event} to {self.shown} failed: {type(exc).__name__}"
        if response.status_code >= 300:
            return (f"notification {event} to {self.shown} failed: HTTP "
                    f"{response.status_code}")
        return None
