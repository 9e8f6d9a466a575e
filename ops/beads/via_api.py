"""The HTTP writer of `import beads --via api`: the same WorkItems, through the REST API.

Parsing and mapping are shared with the direct import (`ops.beads.importer.prepare`); this
module only logs in, finds the product and sends the items to the bulk endpoint
`POST /api/products/{id}/work-items/sync` (which runs the same `ops.workitems.sync` writer):
phase 1 per kind in chunks, parents first, then phase 2 (dependencies). Each request commits
on the server and the writer is idempotent, so after a failure midway re-running the import
finishes the job without duplicates. A dry run is one `phase: all` request the server rolls
back.

Connection errors and 5xx answers are retried a bounded number of times with exponential
backoff, then reported as one line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ops.beads.prepare import LABELS, ImportOptions, PreparedImport, Target
from ops.core.config import Settings
from ops.core.errors import NotFound, OpsError
from ops.core.output import Reporter, suggest
from ops.core.vocabulary import SAMPLE_PASSWORD
from ops.workitems.model import KINDS, SyncResult, WorkItem
from ops.workitems.sync import CHUNK_SIZE, chunks

PASSWORD_ENV = "TASKLETS_API_PASSWORD"
# Per request: as many items as the direct import writes per call (CHUNK_SIZE; per-call
# overhead dominates below that), but at most a few MB of JSON (beads lines reach tens of KB).
CHUNK_BYTES = 8 * 1024 * 1024
MAX_DRY_RUN_ITEMS = 20_000  # the endpoint's per-request limit (api.models.MAX_SYNC_ITEMS)
RETRIES = 4
BACKOFF_SECONDS = 0.5
RETRY_STATUSES = frozenset({500, 502, 503, 504})


def api_password(settings: Settings) -> str:
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if settings.app_env == "development" and settings.app_env_set:
        return SAMPLE_PASSWORD
    raise OpsError(f"{PASSWORD_ENV} is not set",
                   hint=f"Export {PASSWORD_ENV} with the API user's password (the sample "
                   "password is only assumed when APP_ENV=development is set).")


@dataclass
class ApiClient:
    """A small JSON client: bearer token, bounded retries, one OpsError line per failure."""

    base_url: str
    retries: int = RETRIES
    backoff_seconds: float = BACKOFF_SECONDS
    timeout_seconds: float = 300.0
    token: str | None = None
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=self.timeout_seconds)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                **kwargs: Any) -> httpx.Response:
        """The response once it is not a connection error or 5xx (those are retried)."""
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                problem = f"{exc.__class__.__name__}: {exc}" if str(exc) else \
                    exc.__class__.__name__
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            problem = f"HTTP {response.status_code} ({_detail(response)})"
        raise OpsError(f"the API at {self.base_url} failed {self.retries + 1} times: {problem}",
                       hint=f"Is it running and is --api-url right? {suggest('serve')} (or "
                       "`make dev`) starts it; GET /api/health shows the database state. "
                       "Re-running the import later finishes the job without duplicates.")

    def login(self, email: str, password: str) -> dict[str, Any]:
        response = self.request("POST", "/api/auth/login",
                                json={"email": email, "password": password})
        if response.status_code == 401:
            raise OpsError(f"the API refused the login for {email}: check the credentials",
                           hint=f"Set {PASSWORD_ENV} to that user's password, or pass "
                           "--email for another user.")
        body = _ok(response, "log in")
        self.token = body["token"]
        user: dict[str, Any] = body["user"]
        return user

    def find_product(self, name: str) -> dict[str, Any]:
        products = _ok(self.request("GET", "/api/products", params={"name": name}),
                       "find the product")
        if not products:
            raise NotFound(f'product "{name}" not found in your tenant: nothing was imported',
                           hint=f"Run {suggest('seed sample')} to create it, or pass "
                           "--product NAME for an existing product.")
        product: dict[str, Any] = products[0]
        return product

    def sync(self, product_id: int, items: list[str], *, phase: str,
             dry_run: bool = False) -> SyncResult:
        """POST already-encoded items (`encode`), so phase 2 reuses phase 1's JSON."""
        head = json.dumps({"phase": phase, "dryRun": dry_run})[:-1]
        body = f'{head}, "items": [{", ".join(items)}]}}'.encode()
        response = self.request("POST", f"/api/products/{product_id}/work-items/sync",
                                content=body, headers={"Content-Type": "application/json"})
        return SyncResult.model_validate(_ok(response, "sync work items"))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no detail"
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail) if detail else response.reason_phrase or "no detail"


def _ok(response: httpx.Response, action: str) -> Any:
    """The JSON body of a 2xx; one line naming what failed otherwise."""
    if response.is_success:
        return response.json()
    detail = _detail(response)
    if response.status_code == 401:
        raise OpsError(f"the API rejected the token while trying to {action}: {detail}",
                       hint="Check the credentials (and the server's SECRET_KEY/TOKEN_TTL); "
                       "then run the import again.")
    if response.status_code == 403:
        raise OpsError(f"not allowed to {action}: {detail}",
                       hint="Use an internal admin or developer account (--email).")
    raise OpsError(f"the API could not {action}: HTTP {response.status_code} {detail}")


def _by_kind(items: list[WorkItem]) -> Iterator[tuple[str, list[WorkItem]]]:
    """Items grouped per kind, epics first. Parents-first order survives: a parent's kind
    never comes after its child's (feature -> epic, task -> epic/feature/task)."""
    for kind in KINDS:
        group = [item for item in items if item.kind == kind]
        if group:
            yield kind, group


def encode(items: list[WorkItem]) -> list[str]:
    """Each item's wire JSON (the model's camelCase JSON), encoded once."""
    return [item.model_dump_json() for item in items]


def write_via_api(settings: Settings, prepared: PreparedImport, options: ImportOptions,
                  report: Reporter, *, client: ApiClient | None = None,
                  chunk_size: int | None = None) -> tuple[Target, SyncResult]:
    """Log in, find the product, sync every item then every dependency; see module doc."""
    password = api_password(settings)
    api = client or ApiClient(options.api_url)
    try:
        report.line(f"🔐 Authenticating as {options.email}...")
        user = api.login(options.email, password)
        report.line(f"✅ Authenticated successfully (User ID: {user['id']})")
        report.line(f'📦 Finding "{options.product}" product...')
        product = api.find_product(options.product)
        report.line(f"✅ Found product: {product['name']} (ID: {product['id']})")
        target = Target(user["tenantId"], product["id"], product["name"])
        items = prepared.items
        if options.dry_run:
            return target, _dry_run(api, target, items, report)
        return target, _sync(api, target, items, report, chunk_size or CHUNK_SIZE)
    finally:
        if client is None:
            api.close()


def _sync(api: ApiClient, target: Target, items: list[WorkItem], report: Reporter,
          chunk_size: int) -> SyncResult:
    result = SyncResult()
    sent: list[str] = []
    for kind, group in _by_kind(items):
        report.line(f"📝 Syncing {len(group)} {LABELS[kind].lower()} via API...")
        kind_result = SyncResult()
        encoded = encode(group)
        with report.progress(f"📤 {LABELS[kind]}", total=len(group)) as advance:
            for chunk in chunks(encoded, chunk_size, max_bytes=CHUNK_BYTES):
                kind_result.merge(api.sync(target.product_id, chunk, phase="items"))
                advance(len(chunk))
        c = kind_result.counts[kind]
        report.line(f"✅ {LABELS[kind]}: {c.created} created, {c.updated} updated, "
                    f"{c.unchanged} unchanged, {c.removed} removed")
        result.merge(kind_result)
        sent.extend(encoded)
    # Every item again (as the direct import does): phase 2 also removes edges a task lost.
    report.line(f"🔗 Syncing dependencies of {len(sent)} item(s) via API...")
    with report.progress("🔗 Dependencies", total=len(sent)) as advance:
        for chunk in chunks(sent, chunk_size, max_bytes=CHUNK_BYTES):
            result.merge(api.sync(target.product_id, chunk, phase="dependencies"))
            advance(len(chunk))
    return result


def _dry_run(api: ApiClient, target: Target, items: list[WorkItem],
             report: Reporter) -> SyncResult:
    """Both phases in one request the server rolls back: exact counts, nothing written."""
    if len(items) > MAX_DRY_RUN_ITEMS:
        raise OpsError(f"a dry run through the API handles at most {MAX_DRY_RUN_ITEMS} items "
                       f"(this file has {len(items)})",
                       hint="Use `import beads --dry-run` without --via api for this file.")
    report.line(f"📝 Checking {len(items)} work item(s) via API (dry run)...")
    return api.sync(target.product_id, encode(items), phase="all", dry_run=True)
