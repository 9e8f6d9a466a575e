"""Client-portal scoping on the real sample seed: every read endpoint, as a client user of
each sample client, shows only the products the client licenses, the work items under them
and the tags on those items; anything else is a 404 or absent from lists. Internal users
keep tenant-wide reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest
from fastapi.testclient import TestClient
from support.api import auth

from ops.core.config import Settings
from ops.core.vocabulary import SAMPLE_PASSWORD
from ops.seed.builtin import run_seeds

pytest_plugins = ["support.api_fixtures"]
pytestmark = pytest.mark.security

KINDS = ("epics", "features", "tasks")
LICENSED = {
    "john@acme.com": {"Tasklets", "CRM Sales"},
    "admin@acme.com": {"Tasklets", "CRM Sales"},
    "tech@techcorp.com": {"Tasklets", "SDMS v2"},
    "founder@startupxyz.com": {"HRM v2"},
}
INTERNAL = ("ramesh@systech.com", "john@systech.com", "sarah@systech.com", "mike@systech.com")


@dataclass
class Portal:
    """The seeded tenant, as rows read straight from the database."""

    products: dict[str, int]  # name -> id
    items: dict[str, dict[int, int]]  # kind table -> {item id: product id}
    tags_by_product: dict[int, set[str]]  # product id -> tags on its work items
    all_tags: set[str]


@pytest.fixture
def portal(settings: Settings, api_client: TestClient, conn: psycopg.Connection) -> Portal:
    """The sample seed, plus tagged work items in SDMS v2 and HRM v2 (the seed has none
    there), so every client sees something the others must not."""
    run_seeds(settings, lookups=True, sample=True)
    products = dict(conn.execute("SELECT name, id FROM products").fetchall())
    admin = auth(api_client, "ramesh@systech.com", SAMPLE_PASSWORD)
    for product, prefix in (("SDMS v2", "sdms"), ("HRM v2", "hrm")):
        items = [{"kind": "epic", "externalId": f"{prefix}-1", "title": f"{prefix} epic",
                  "labels": [f"{prefix}-only"]},
                 {"kind": "feature", "externalId": f"{prefix}-2", "title": f"{prefix} feature",
                  "parentExternalId": f"{prefix}-1"},
                 {"kind": "task", "externalId": f"{prefix}-3", "title": f"{prefix} task",
                  "parentExternalId": f"{prefix}-2", "labels": ["shared-label"]}]
        response = api_client.post(f"/api/products/{products[product]}/work-items/sync",
                                   headers=admin, json={"items": items})
        assert response.status_code == 200, response.text
    conn.execute("UPDATE tasks SET deleted_at = now() WHERE external_id = 'hrm-3'")
    items = {kind: dict(conn.execute(f"SELECT id, product_id FROM {kind}").fetchall())
             for kind in KINDS}
    tags_by_product: dict[int, set[str]] = {}
    for product_id, tag in conn.execute(
            "SELECT coalesce(e.product_id, f.product_id, t.product_id), g.name"
            " FROM item_tags it JOIN tags g ON g.id = it.tag_id"
            " LEFT JOIN epics e ON e.id = it.epic_id LEFT JOIN features f ON f.id = it.feature_id"
            " LEFT JOIN tasks t ON t.id = it.task_id"
            " WHERE coalesce(e.product_id, f.product_id, t.product_id) IS NOT NULL"):
        tags_by_product.setdefault(product_id, set()).add(tag)
    all_tags = {row[0] for row in conn.execute("SELECT name FROM tags")}
    return Portal(products, items, tags_by_product, all_tags)


def _get(client: TestClient, headers: dict, path: str, **params) -> list[dict]:
    response = client.get(path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _sanity(portal: Portal) -> None:
    """The data really spreads over every product, so each assertion below can fail."""
    for kind in KINDS:
        assert {portal.products[n] for n in ("Tasklets", "SDMS v2", "HRM v2")} <= set(
            portal.items[kind].values()), kind
    assert portal.tags_by_product[portal.products["SDMS v2"]] == {"sdms-only", "shared-label"}


def _products(client: TestClient, headers: dict, portal: Portal, licensed: set[str]) -> None:
    assert {p["name"] for p in _get(client, headers, "/api/products")} == licensed
    for name, product_id in portal.products.items():
        one = client.get(f"/api/products/{product_id}", headers=headers)
        by_name = _get(client, headers, "/api/products", name=name)
        if name in licensed:
            assert one.status_code == 200 and one.json()["name"] == name
            assert [p["id"] for p in by_name] == [product_id]
        else:
            assert one.status_code == 404 and one.json() == {"detail": "product not found"}
            assert by_name == []


def _work_items(client: TestClient, headers: dict, portal: Portal, visible: set[int]) -> None:
    for kind in KINDS:
        expected = sorted(i for i, p in portal.items[kind].items() if p in visible)
        listed = _get(client, headers, f"/api/{kind}", includeDeleted=True, limit=1000)
        assert [row["id"] for row in listed] == expected, kind
        # Paging walks the same rows, one at a time, and nothing else.
        paged = [row["id"] for offset in range(len(expected) + 1) for row in
                 _get(client, headers, f"/api/{kind}", includeDeleted=True, limit=1,
                      offset=offset)]
        assert paged == expected, kind
        for item_id, product_id in portal.items[kind].items():
            one = client.get(f"/api/{kind}/{item_id}", headers=headers)
            if product_id in visible:
                assert one.status_code == 200 and one.json()["id"] == item_id
            else:
                assert one.status_code == 404, (kind, item_id)
                assert one.json() == {"detail": f"{kind[:-1]} not found"}


def _filters(client: TestClient, headers: dict, portal: Portal, visible: set[int]) -> None:
    for name, product_id in portal.products.items():
        for kind in KINDS:
            rows = _get(client, headers, f"/api/{kind}", productId=product_id,
                        includeDeleted=True)
            expected = sorted(i for i, p in portal.items[kind].items()
                              if p == product_id and p in visible)
            assert [r["id"] for r in rows] == expected, (name, kind)
    for epic_id, product_id in portal.items["epics"].items():
        for kind in ("features", "tasks"):
            rows = _get(client, headers, f"/api/{kind}", epicId=epic_id)
            assert all(r["productId"] in visible for r in rows)
            if product_id not in visible:
                assert rows == [], (kind, epic_id)
    for prefix, product in (("sdms", "SDMS v2"), ("hrm", "HRM v2")):
        rows = _get(client, headers, "/api/epics", externalSource="beads",
                    externalId=f"{prefix}-1")
        assert len(rows) == (1 if portal.products[product] in visible else 0), prefix


def _tags(client: TestClient, headers: dict, portal: Portal, visible: set[int]) -> None:
    expected = set().union(*(portal.tags_by_product.get(p, set()) for p in visible))
    assert expected  # every sample client sees at least one tag
    assert {t["name"] for t in _get(client, headers, "/api/tags", limit=1000)} == expected
    for tag in portal.all_tags:
        found = _get(client, headers, "/api/tags", name=tag)
        assert [t["name"] for t in found] == ([tag] if tag in expected else []), tag


def _writes_refused(client: TestClient, headers: dict, portal: Portal,
                    licensed: set[str]) -> None:
    product_id = portal.products[sorted(licensed)[0]]
    epic_id = next(iter(portal.items["epics"]))
    writes = [
        client.post("/api/epics", headers=headers, json={"productId": product_id, "title": "x"}),
        client.patch(f"/api/epics/{epic_id}", headers=headers, json={"title": "y"}),
        client.post("/api/tags", headers=headers, json={"name": "t"}),
        client.post(f"/api/products/{product_id}/work-items/sync", headers=headers,
                    json={"items": [{"kind": "epic", "externalId": "x", "title": "x"}]}),
    ]
    assert [w.status_code for w in writes] == [403, 403, 403, 403]


@pytest.mark.parametrize("email", sorted(LICENSED))
def test_client_user_reads_only_what_its_client_licenses(api_client: TestClient,
                                                          portal: Portal, email: str):
    _sanity(portal)
    headers = auth(api_client, email, SAMPLE_PASSWORD)
    licensed = LICENSED[email]
    visible = {portal.products[name] for name in licensed}
    _products(api_client, headers, portal, licensed)
    _work_items(api_client, headers, portal, visible)
    _filters(api_client, headers, portal, visible)
    _tags(api_client, headers, portal, visible)
    _writes_refused(api_client, headers, portal, licensed)


def test_internal_users_keep_tenant_wide_reads(api_client: TestClient, portal: Portal):
    for email in INTERNAL:
        headers = auth(api_client, email, SAMPLE_PASSWORD)
        names = {p["name"] for p in _get(api_client, headers, "/api/products")}
        assert names == set(portal.products), email
        for kind in KINDS:
            listed = _get(api_client, headers, f"/api/{kind}", includeDeleted=True, limit=1000)
            assert {row["id"] for row in listed} == set(portal.items[kind]), (email, kind)
        tags = {t["name"] for t in _get(api_client, headers, "/api/tags", limit=1000)}
        assert tags == portal.all_tags, email
