"""Talking to a running `tasklets-db testdb serve` (the CLI's get/put, the pytest plugin with
TESTDB_SERVER): the same operations as a Pool, over HTTP."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from ops.core.errors import NotFound, OpsError, UsageError
from ops.testdb.pool import Lease, PoolExhausted
from ops.testdb.recipe import DEFAULT_RECIPE, Recipe
from ops.testdb.templates import Template

DEFAULT_SERVER = "http://127.0.0.1:5010"
_ERRORS: dict[int, type[OpsError]] = {400: UsageError, 404: NotFound, 503: PoolExhausted}


@dataclass
class Client:
    server: str = DEFAULT_SERVER
    token: str = ""
    timeout: float = 1800.0  # a first template build may take minutes

    @classmethod
    def from_env(cls, server: str | None = None) -> Client:
        return cls(server or os.environ.get("TESTDB_SERVER") or DEFAULT_SERVER,
                   os.environ.get("TESTDB_TOKEN", ""))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(method, self.server.rstrip("/") + path, json=body,
                                     headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise OpsError(f"cannot reach the test-database server at {self.server}: {exc}",
                           hint="Start it (`make testdb-up`, `tasklets-db testdb serve`) or "
                           "set TESTDB_SERVER to where it listens.") from None
        if response.status_code == 204:
            return None
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code >= 400:
            error = _ERRORS.get(response.status_code, OpsError)
            if response.status_code == 401:
                raise OpsError(f"the test-database server refused the token: "
                               f"{payload.get('error')}",
                               hint="Set TESTDB_TOKEN to the server's token.")
            raise error(str(payload.get("error")), hint=payload.get("hint"))
        return payload

    def ensure(self, recipe: Recipe = DEFAULT_RECIPE) -> Template:
        found = self._call("POST", "/templates", {"seeds": list(recipe.seeds),
                                                   "snapshot": recipe.snapshot})
        return Template(found["hash"], found["name"], found["family"], found["size_bytes"],
                        found["built"], found["seconds"])

    def lease(self, template_hash: str | None = None, *, wait: float = 30.0) -> Lease:
        found = self._call("POST", "/databases", {"template": template_hash, "wait": wait})
        return Lease(found["name"], found["url"], found["hash"], found["expires_in"],
                     found.get("cold", False))

    def give_back(self, name: str, *, recycle: bool = False) -> None:
        self._call("DELETE", f"/databases/{name}" + ("?recycle=true" if recycle else ""))

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", "/status")
        return found


def database_name(database: str) -> str:
    """A database's name from itself or from a URL that names it."""
    if "://" not in database:
        return database
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(database).path.lstrip("/"))
