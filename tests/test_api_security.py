"""Hardening of the REST API against hostile input: tokens, bodies, logins, sizes, authorship."""

from __future__ import annotations

import httpx
import pytest
from api_support import LiveServer, World

pytest_plugins = ["api_fixtures"]
pytestmark = pytest.mark.security


# --- tokens ---------------------------------------------------------------------------------

def test_non_ascii_bearer_token_is_401_not_500(live_server: LiveServer, world: World):
    token = "v1.e30.sïgnature".encode()
    with httpx.Client(base_url=live_server.url) as client:
        response = client.get("/api/epics", headers=[(b"authorization", b"Bearer " + token)])
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or expired token"}
