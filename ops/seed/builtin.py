"""Built-in seeds: `lookups` (SysTech tenant + reference tags) and `sample` (demo data).

Both are idempotent: every row is found by its natural key (the unique constraints in
ops/schema/models.py) before it is inserted, so a second run creates nothing and reports what was
already there. `run_seeds` runs any combination in ONE transaction under an advisory lock:
a failure anywhere leaves nothing half-seeded, and two concurrent runs queue instead of racing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ops.core.catalog import discover_tables, require_schema
from ops.core.config import Settings
from ops.core.db import connection
from ops.core.defaults import DEFAULT_RANDOM_SEED
from ops.core.guard import refuse_production
from ops.core.output import SILENT, Reporter
from ops.core.tenancy import SYSTECH_TENANT
from ops.core.vocabulary import SAMPLE_PASSWORD
from ops.schema.migrate import PushResult, push
from ops.seed.data import (
    CLIENT_PRODUCTS,
    CLIENTS,
    COMMENTS,
    EPICS,
    FEATURES,
    IDEAS,
    ITEM_TAGS,
    LOOKUP_TAGS,
    PRODUCTS,
    TASK_DEPENDENCIES,
    TASKS,
    TEAMS,
    TICKETS,
    USERS,
)
from ops.seed.helpers import (
    Tally,
    announce,
    get_or_create,
    hash_password,
    require_systech_tenant,
    tenant_slug,
)
from ops.seed.volume import VolumeResult, generate_volume

# Any constant works; it only has to be the same for every tasklets-db process.
SEED_LOCK_KEY = 0x7461736B6C657473  # "tasklets"

SUMMARY_KINDS = ("Clients", "Products", "Internal Users", "Client Users", "Teams", "Ideas")


@dataclass
class LookupsResult:
    tenant_id: int
    tenant_created: bool
    tags: Tally


@dataclass
class SampleResult:
    tenant_id: int
    counts: dict[str, Tally] = field(default_factory=dict)
    volume: VolumeResult | None = None

    @property
    def created(self) -> int:
        return sum(t.created for t in self.counts.values())


@dataclass
class SeedResult:
    lookups: LookupsResult | None = None
    sample: SampleResult | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        created = 0
        if self.lookups:
            created += self.lookups.tags.created + int(self.lookups.tenant_created)
        if self.sample:
            created += self.sample.created + (self.sample.volume.total_rows
                                              if self.sample.volume else 0)
        return created > 0


def seed_lookups(conn: psycopg.Connection, report: Reporter = SILENT) -> LookupsResult:
    """Create the SysTech tenant and the 18 reference tags that are missing."""
    report.line("📚 Seeding lookup tables...")
    report.line(f"🏢 Creating {SYSTECH_TENANT} tenant...")
    tenant_id, tenant_created = get_or_create(
        conn, "tenants", {"name": SYSTECH_TENANT},
        lambda: {"plan": "enterprise", "slug": tenant_slug(conn, SYSTECH_TENANT)})
    announce(report, "tenant", f"{SYSTECH_TENANT} (ID: {tenant_id})", tenant_created)
    tags = Tally()
    for name, color, description in LOOKUP_TAGS:
        _, created = get_or_create(conn, "tags", {"tenant_id": tenant_id, "name": name},
                                   {"color": color, "description": description})
        announce(report, "tag", name, created, tags)
    report.line("✅ Lookup tables seeded!")
    present = f" ({tags.existing} already present)" if tags.existing else ""
    report.line(f"📊 Tags created: {tags.created}/{len(LOOKUP_TAGS)}{present}")
    return LookupsResult(tenant_id, tenant_created, tags)


def seed_sample(conn: psycopg.Connection, report: Reporter = SILENT, *, scale: float = 0,
                random_seed: int = DEFAULT_RANDOM_SEED) -> SampleResult:
    """Create the sample clients, products, users, teams, ideas and work items that are missing.

    `scale` > 0 also streams that many units of volume data (see ops.seed.volume).
    """
    tenant_id = require_systech_tenant(conn, needed_by="`seed sample`")
    report.line("🌱 Seeding sample data...")
    result = SampleResult(tenant_id, {kind: Tally() for kind in SUMMARY_KINDS})
    counts = result.counts
    tenant = {"tenant_id": tenant_id}

    clients: dict[str, int] = {}
    for name, email, website in CLIENTS:
        clients[name], created = get_or_create(conn, "clients", {**tenant, "name": name},
                                               {"email": email, "website": website})
        announce(report, "client", name, created, counts["Clients"])
    products: dict[str, int] = {}
    for name, description in PRODUCTS:
        products[name], created = get_or_create(conn, "products", {**tenant, "name": name},
                                                {"description": description})
        announce(report, "product", name, created, counts["Products"])
    links = counts["Client Products"] = Tally()
    for licensee, product in CLIENT_PRODUCTS:
        _, created = get_or_create(
            conn, "client_products",
            {"client_id": clients[licensee], "product_id": products[product]},
            {"licensed_at": "2024-01-01"}, returning=None)
        links.add(created)
    report.line(f"✅ Client products linked: {links.created}/{len(CLIENT_PRODUCTS)}")

    users: dict[str, int] = {}
    for email, name, role, client in USERS:
        def new_user(name: str = name, role: str = role,
                     client: str | None = client) -> dict[str, Any]:
            return {
                "name": name, "role": role, "password_hash": hash_password(SAMPLE_PASSWORD),
                "user_type": "client" if client else "internal",
                "client_id": clients[client] if client else None,
            }

        users[email], created = get_or_create(conn, "users", {**tenant, "email": email},
                                              new_user)
        kind = "client user" if client else "internal user"
        announce(report, kind, f"{email} ({role})", created,
                 counts["Client Users" if client else "Internal Users"])

    members = counts["Team Members"] = Tally()
    for name, description, team_members in TEAMS:
        team_id, created = get_or_create(conn, "teams", {**tenant, "name": name},
                                         {"description": description})
        announce(report, "team", name, created, counts["Teams"])
        for email, role in team_members:
            _, created = get_or_create(conn, "team_members",
                                       {"team_id": team_id, "user_id": users[email]},
                                       {"role": role}, returning=None)
            members.add(created)

    items: dict[tuple[str, str], int] = {}
    for title, description, product, submitter, status, votes in IDEAS:
        items["idea", title], created = get_or_create(
            conn, "ideas", {**tenant, "title": title},
            {"description": description, "product_id": products[product],
             "submitted_by": users[submitter], "status": status, "votes": votes})
        announce(report, "idea", title, created, counts["Ideas"])

    _seed_work_items(conn, report, tenant_id, products, clients, users, items, counts)
    _print_summary(report, result)
    if scale > 0:
        result.volume = generate_volume(conn, tenant_id, scale=scale,
                                        random_seed=random_seed, report=report)
    return result


def _seed_work_items(conn: psycopg.Connection, report: Reporter, tenant_id: int,
                     products: dict[str, int], clients: dict[str, int], users: dict[str, int],
                     items: dict[tuple[str, str], int], counts: dict[str, Tally]) -> None:
    """Epics, features, tasks, dependencies, tickets, comments and tags: every table gets rows."""
    owner = users["ramesh@systech.com"]
    work = {"tenant_id": tenant_id, "created_by": owner}
    epic_product: dict[str, int] = {}
    for product, title, status, priority, labels, description in EPICS:
        epic_product[title] = products[product]
        items["epic", title], created = get_or_create(
            conn, "epics", {"product_id": products[product], "title": title},
            {**work, "status": status, "priority": priority, "labels": labels,
             "description": description})
        counts.setdefault("Epics", Tally()).add(created)
    feature_epic: dict[str, str] = {}
    for epic, title, status, priority in FEATURES:
        feature_epic[title] = epic
        items["feature", title], created = get_or_create(
            conn, "features", {"product_id": epic_product[epic], "title": title},
            {**work, "epic_id": items["epic", epic], "status": status, "priority": priority,
             "assignee_id": users["john@systech.com"]})
        counts.setdefault("Features", Tally()).add(created)
    for feature, title, status, priority, estimate, parent in TASKS:
        epic = feature_epic[feature]
        items["task", title], created = get_or_create(
            conn, "tasks", {"product_id": epic_product[epic], "title": title},
            {**work, "epic_id": items["epic", epic], "feature_id": items["feature", feature],
             "parent_task_id": items["task", parent] if parent else None,
             "task_type": "subtask" if parent else "task", "status": status,
             "priority": priority, "estimate_minutes": estimate,
             "assignee_id": users["john@systech.com"], "metadata": {"sample": True}})
        counts.setdefault("Tasks", Tally()).add(created)
    for task, depends_on in TASK_DEPENDENCIES:
        _, created = get_or_create(
            conn, "task_dependencies",
            {"task_id": items["task", task], "depends_on_task_id": items["task", depends_on],
             "dependency_type": "blocks"}, {"tenant_id": tenant_id})
        counts.setdefault("Task Dependencies", Tally()).add(created)
    for product, client, title, status, priority, reporter_email, assignee in TICKETS:
        items["ticket", title], created = get_or_create(
            conn, "tickets", {"product_id": products[product], "title": title},
            {"tenant_id": tenant_id, "client_id": clients[client], "status": status,
             "priority": priority, "reported_by": users[reporter_email],
             "assignee_id": users[assignee]})
        counts.setdefault("Tickets", Tally()).add(created)
    for kind, title, author, body in COMMENTS:
        _, created = get_or_create(
            conn, "comments",
            {f"{kind}_id": items[kind, title], "author_id": users[author], "body": body},
            {"tenant_id": tenant_id})
        counts.setdefault("Comments", Tally()).add(created)
    for kind, title, tag in ITEM_TAGS:
        tag_row = conn.execute("SELECT id FROM tags WHERE tenant_id = %s AND name = %s",
                               (tenant_id, tag)).fetchone()
        if tag_row is None:  # someone removed a lookup tag; the sample does not recreate it
            continue
        _, created = get_or_create(conn, "item_tags",
                                   {"tag_id": tag_row[0], f"{kind}_id": items[kind, title]})
        counts.setdefault("Item Tags", Tally()).add(created)
    report.line("✅ Work items: " + ", ".join(
        f"{counts[k].total} {k.lower()}" for k in ("Epics", "Features", "Tasks", "Tickets",
                                                    "Comments") if k in counts))


def _print_summary(report: Reporter, result: SampleResult) -> None:
    report.line("")
    report.line("📊 Summary:")
    report.line("   Tenants: 1")
    for kind in SUMMARY_KINDS:
        tally = result.counts[kind]
        note = ""
        if tally.existing and tally.created:
            note = f" ({tally.created} created, {tally.existing} already present)"
        elif tally.existing:
            note = " (already present)"
        report.line(f"   {kind}: {tally.total}{note}")
    report.line("")
    report.line(f"🔑 Test users (password: {SAMPLE_PASSWORD}):")
    report.line("   Internal portal:")
    for email, _, role, client in USERS:
        if client is None:
            report.line(f"     {email:<24} {role}")
    report.line("   Client portal:")
    for email, _, role, client in USERS:
        if client is not None:
            report.line(f"     {email:<24} {role} ({client})")
    if result.created:
        report.line("✅ Sample data seeded!")
    else:
        report.line("✅ Sample data already present: nothing created.")


def refuse_sample_in_production(conn: psycopg.Connection, settings: Settings,
                                allow_production: bool) -> None:
    """Sample users share a published password: never plant them in production by accident."""
    refuse_production(conn, settings, action="seed sample data (users with a published "
                      "password) into", allow_production=allow_production)


def run_seeds(settings: Settings, *, lookups: bool, sample: bool, scale: float = 0,
              random_seed: int = DEFAULT_RANDOM_SEED, allow_production: bool = False,
              report: Reporter = SILENT) -> SeedResult:
    """Run the chosen built-in seeds in one transaction: all of it is committed, or none."""
    started = time.monotonic()
    result = SeedResult()
    with connection(settings) as conn, conn.transaction():
        prepare_seed_transaction(conn)
        if sample:
            refuse_sample_in_production(conn, settings, allow_production)
        if lookups:
            result.lookups = seed_lookups(conn, report)
        if lookups and sample:
            report.line("")
        if sample:
            result.sample = seed_sample(conn, report, scale=scale, random_seed=random_seed)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def prepare_seed_transaction(conn: psycopg.Connection) -> None:
    """Check the schema exists and queue behind any other seed run (lock ends with the txn)."""
    require_schema(discover_tables(conn))
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))


@dataclass
class FreshResult:
    push: PushResult
    seed: SeedResult

    @property
    def changed(self) -> bool:
        return bool(self.push.applied) or self.seed.changed


def fresh(settings: Settings, *, allow_production: bool = False,
          report: Reporter = SILENT) -> FreshResult:
    """push, then lookups + sample (one transaction): a ready-to-use database, idempotently.

    The push is its own transaction (Alembic's); if seeding fails afterwards the schema stays
    migrated and no seed row is written.
    """
    with connection(settings) as conn:  # before push, which rewrites the environment marker
        refuse_sample_in_production(conn, settings, allow_production)
    pushed = push(settings, report)
    report.line("")
    seeded = run_seeds(settings, lookups=True, sample=True, allow_production=allow_production,
                       report=report)
    result = FreshResult(pushed, seeded)
    report.line("")
    if result.changed:
        report.line("🎉 Fresh database ready: schema at head, lookups and sample data seeded.")
    else:
        report.line("✅ Database is already fresh: schema at head, lookups and sample data "
                    "present. Nothing changed.")
    return result

