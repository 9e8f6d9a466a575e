"""Schemathesis against the API's own OpenAPI schema: generated requests, valid and invalid,
authenticated as an admin, never get a 5xx (nor a traceback or driver error in the body).

Bounded for CI: a few dozen examples per operation, derandomised (reproducible). One pytest
case per operation (schemathesis' lazy fixture loader does not run on pytest 9, so its
strategies are driven with hypothesis directly).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from support.api import SECRET, World, auth

from api.app import create_app
from api.config import ApiSettings
from ops.core.config import Settings

pytest_plugins = ["support.api_fixtures"]

EXAMPLES = 20  # per operation and mode


def _labels() -> list[str]:
    """Operation labels ("GET /api/epics"), read from an app that never touches a database."""
    offline = ApiSettings(ops=Settings(database_url="postgresql://offline/none",
                                       backup_dir=Path(".")), secret_key=SECRET)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(offline))
    return [result.ok().label for result in schema.get_all_operations()]


def _run(operation: Any, mode: GenerationMode, headers: dict[str, str],
         path_parameters: dict[str, int] | None, statuses: list[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def no_server_error(case: Any) -> None:
        response = case.call(headers=headers)
        statuses.append(response.status_code)
        assert response.status_code < 500, (
            f"{mode.value}: {case.method} {case.formatted_path} query={case.query!r} "
            f"body={case.body!r} -> {response.status_code}: {response.text[:300]}")
        assert "Traceback" not in response.text and "psycopg" not in response.text

    no_server_error()


@pytest.mark.parametrize("label", _labels())
def test_generated_requests_never_get_a_server_error(label: str, api_settings: ApiSettings,
                                                     api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(api_settings))
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)
    # Valid requests aim at the real product, so the sync writer runs on generated items.
    product = {"product_id": world.product_a} if "{product_id}" in operation.path else None
    statuses: list[int] = []
    _run(operation, GenerationMode.POSITIVE, headers, product, statuses)
    # An operation without parameters or body has no invalid request to make.
    with contextlib.suppress(Unsatisfiable):
        _run(operation, GenerationMode.NEGATIVE, headers, None, statuses)
    assert statuses
    print(label, sorted(set(statuses)), len(statuses))
