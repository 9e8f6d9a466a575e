"""Row generators for the volume seed (ops.seed.volume streams them into COPY).

Every generator is lazy and deterministic: it draws from its own `Dice` (seeded by the random
seed, the table and its first id), computes foreign keys from id arithmetic (no lookups), and
yields tuples in its COLUMNS order.
Text comes from small pools built once per run, because composing a few hundred characters
of prose per row with `random.choices` cost ~200 µs a row (minutes at --scale 100).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ops.core.vocabulary import INTERNAL_ROLES, PRIORITIES, TICKET_STATUSES, WORK_STATUSES

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
DAY_SECONDS = 24 * 3600
YEAR_SECONDS = 365 * DAY_SECONDS

# Rows per unit of --scale; links, members and tags follow from these.
UNIT = {
    "clients": 10, "internal_users": 30, "teams": 2, "products": 20, "epics": 200,
    "features": 1_000, "tasks": 10_000, "task_dependencies": 2_000, "tickets": 500,
    "comments": 5_000, "ideas": 5,
}
CLIENT_USERS_PER_CLIENT = 2
PRODUCTS_PER_CLIENT = 2

_WORD_LIST = (
    "account alert api archive audit backlog badge billing board branch budget cache calendar "
    "campaign cart chart checkout client cluster comment config contract cookie dashboard "
    "deadline deploy digest draft email endpoint estimate export feed field filter form gateway "
    "grid handler import index inbox invoice job journal kanban label layout ledger limit list "
    "locale log mailer manifest menu metric migration modal module notice order owner page "
    "panel payment pipeline plan policy portal profile queue quota rate record release report "
    "request role route schedule schema search session sprint status storage stream summary "
    "sync tab template tenant theme ticket timeline token tracker upload user vault webhook "
    "widget workflow workspace"
)
WORDS = _WORD_LIST.split()
VERBS = ("Add", "Fix", "Refactor", "Document", "Test", "Migrate", "Speed up", "Remove",
         "Validate", "Cache", "Audit", "Redesign", "Localise", "Paginate", "Secure")
FIRST_NAMES = ("Asha", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jia",
               "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Ravi", "Sofia", "Tom")
LAST_NAMES = ("Adams", "Bose", "Costa", "Diaz", "Evans", "Fischer", "Gupta", "Haddad", "Ito",
              "Jensen", "Kim", "Lopez", "Mehta", "Novak", "Okafor", "Park", "Rossi", "Singh")
LABELS = ("frontend", "backend", "api", "ux", "performance", "security", "tech-debt", "docs",
          "mobile", "infra", "billing", "reporting")
COMPONENTS = ("web", "api", "worker", "mobile", "reports", "auth", "billing")
CLOSED_STATUSES = frozenset({"done", "cancelled"})


def _weighted(values: Sequence[str], weights: Sequence[int]) -> tuple[str, ...]:
    """A lookup table where each value appears `weight` times: one index draw picks by weight."""
    return tuple(v for v, w in zip(values, weights, strict=True) for _ in range(w))


WORK_STATUS_TABLE = _weighted(WORK_STATUSES, (15, 20, 20, 5, 10, 25, 5))
PRIORITY_TABLE = _weighted(PRIORITIES, (5, 20, 45, 20, 10))
TICKET_STATUS_TABLE = _weighted(TICKET_STATUSES, (30, 25, 10, 20, 15))
INTERNAL_ROLE_TABLE = _weighted(INTERNAL_ROLES, (3, 12, 6, 1))
TASK_TYPE_TABLE = _weighted(("task", "bug", "chore"), (6, 3, 1))


class Dice:
    """Cheap deterministic draws: `random.Random.randrange/choices` are slow Python code."""

    __slots__ = ("random", "getrandbits")

    def __init__(self, seed: str) -> None:
        rng = random.Random(seed)  # str seeds hash with SHA-512: stable across runs
        self.random = rng.random
        self.getrandbits = rng.getrandbits

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def pick(self, values: Sequence[Any]) -> Any:
        return values[int(self.random() * len(values))]

    def timestamp(self) -> datetime:
        return BASE_TIME + timedelta(seconds=int(self.random() * YEAR_SECONDS))

    def later(self, moment: datetime, max_days: int = 30) -> datetime:
        return moment + timedelta(seconds=int(self.random() * max_days * DAY_SECONDS))

    def due(self, moment: datetime, min_days: int, max_days: int) -> date:
        return (moment + timedelta(days=min_days + self.below(max_days - min_days))).date()

    def uuid(self) -> str:
        """A version-4 UUID as 32 hex digits (PostgreSQL accepts the unhyphenated form)."""
        n = self.getrandbits(128)
        n = (n & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
        n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
        return f"{n:032x}"


class Texts:
    """Pools of titles, descriptions and comments, drawn once per run from the seed."""

    def __init__(self, random_seed: int, pool: int = 2048) -> None:
        rng = random.Random(f"{random_seed}:texts")

        def words(k: int) -> str:
            return " ".join(rng.choices(WORDS, k=k))

        self.titles = [f"{rng.choice(VERBS)} {words(2)} {rng.choice(WORDS)}"
                       for _ in range(pool)]
        # A few hundred characters each, in sentences.
        self.descriptions = [". ".join(words(rng.randrange(6, 12)).capitalize()
                                       for _ in range(rng.randrange(4, 7))) + "."
                             for _ in range(pool)]
        self.comments = [words(rng.randrange(8, 30)).capitalize() + "." for _ in range(pool)]
        self.label_sets = [sorted(rng.sample(LABELS, rng.randrange(4))) for _ in range(256)]


@dataclass(frozen=True)
class Plan:
    """How many rows each generated table gets for a given scale."""

    clients: int
    internal_users: int
    teams: int
    products: int
    epics: int
    features: int
    tasks: int
    task_dependencies: int
    tickets: int
    comments: int
    ideas: int

    @classmethod
    def for_scale(cls, scale: float) -> Plan:
        counts = {name: max(1, round(per_unit * scale)) for name, per_unit in UNIT.items()}
        # Dependency k links a distinct task i >= 1 to an earlier one.
        counts["task_dependencies"] = min(counts["task_dependencies"], counts["tasks"] - 1)
        return cls(**counts)

    @property
    def client_users(self) -> int:
        return self.clients * CLIENT_USERS_PER_CLIENT

    @property
    def users(self) -> int:
        return self.internal_users + self.client_users

    def client_product_indexes(self, client: int) -> list[int]:
        """The products a client licenses (distinct; its tickets are about these)."""
        return sorted({(client * PRODUCTS_PER_CLIENT + k) % self.products
                       for k in range(PRODUCTS_PER_CLIENT)})


@dataclass
class Context:
    """What every generator needs: the plan, where each table's ids start, seed, pools."""

    plan: Plan
    tenant_id: int
    random_seed: int
    first_id: dict[str, int]
    tag_ids: list[int]
    password_hash: str
    texts: Texts

    def id(self, table: str, index: int) -> int:
        return self.first_id[table] + index

    def dice(self, table: str) -> Dice:
        # The first id is part of the seed so that a second run (which appends after the
        # first) draws new public ids instead of repeating the first run's.
        return Dice(f"{self.random_seed}:{table}:{self.first_id.get(table, 0)}")

    # Index arithmetic that keeps the hierarchy consistent without reading anything back.
    def epic_of_feature(self, feature: int) -> int:
        return feature * self.plan.epics // self.plan.features

    def product_of_epic(self, epic: int) -> int:
        return epic * self.plan.products // self.plan.epics

    def feature_of_task(self, task: int) -> int:
        return task * self.plan.features // self.plan.tasks

    def first_task_of_feature(self, feature: int) -> int:
        return -(-feature * self.plan.tasks // self.plan.features)

    def internal_user(self, dice: Dice) -> int:
        return self.id("users", dice.below(self.plan.internal_users))

    def client_user(self, client: int, k: int) -> int:
        return self.id("users", self.plan.internal_users + client * CLIENT_USERS_PER_CLIENT + k)


def person(index: int) -> str:
    return (f"{FIRST_NAMES[index % len(FIRST_NAMES)]} "
            f"{LAST_NAMES[index // len(FIRST_NAMES) % len(LAST_NAMES)]}")


Row = tuple[Any, ...]

CLIENT_COLUMNS = ("id", "tenant_id", "name", "email", "website", "metadata", "created_at",
                  "updated_at")


def clients(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("clients")
    for i in range(ctx.plan.clients):
        cid = ctx.id("clients", i)
        created = dice.timestamp()
        yield (cid, ctx.tenant_id,
               f"{dice.pick(WORDS).title()} {dice.pick(WORDS).title()} Ltd #{cid}",
               f"contact@client{cid}.volume.test", f"https://client{cid}.volume.test",
               f'{{"seats": {5 + dice.below(500)}, '
               f'"tier": "{dice.pick(("bronze", "silver", "gold"))}"}}',
               created, dice.later(created))


PRODUCT_COLUMNS = ("id", "tenant_id", "name", "description", "is_active", "metadata",
                   "created_at", "updated_at")


def products(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("products")
    for i in range(ctx.plan.products):
        pid = ctx.id("products", i)
        created = dice.timestamp()
        yield (pid, ctx.tenant_id, f"{dice.pick(WORDS).title()} {dice.pick(WORDS).title()} {pid}",
               dice.pick(ctx.texts.descriptions), dice.random() < 0.9,
               f'{{"version": "{1 + dice.below(5)}.{dice.below(10)}"}}',
               created, dice.later(created))


CLIENT_PRODUCT_COLUMNS = ("client_id", "product_id", "licensed_at", "created_at")


def client_products(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("client_products")
    for c in range(ctx.plan.clients):
        for p in ctx.plan.client_product_indexes(c):
            created = dice.timestamp()
            yield (ctx.id("clients", c), ctx.id("products", p), created.date(), created)


USER_COLUMNS = ("id", "tenant_id", "client_id", "email", "name", "password_hash", "user_type",
                "role", "is_active", "last_login_at", "created_at", "updated_at")


def users(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("users")
    for i in range(ctx.plan.users):
        uid = ctx.id("users", i)
        created = dice.timestamp()
        if i < ctx.plan.internal_users:
            client_id, email, kind = None, f"user{uid}@systech.volume.test", "internal"
            role = dice.pick(INTERNAL_ROLE_TABLE)
        else:
            client, k = divmod(i - ctx.plan.internal_users, CLIENT_USERS_PER_CLIENT)
            client_id = ctx.id("clients", client)
            email, kind = f"user{uid}@client{client_id}.volume.test", "client"
            role = "company_admin" if k == 0 else "user"
        yield (uid, ctx.tenant_id, client_id, email, person(i), ctx.password_hash, kind, role,
               dice.random() < 0.95, dice.later(created, 60), created, dice.later(created))


TEAM_COLUMNS = ("id", "tenant_id", "name", "description", "created_at", "updated_at")


def teams(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("teams")
    for i in range(ctx.plan.teams):
        tid = ctx.id("teams", i)
        created = dice.timestamp()
        yield (tid, ctx.tenant_id, f"Squad {tid}", dice.pick(ctx.texts.comments), created,
               dice.later(created))


TEAM_MEMBER_COLUMNS = ("team_id", "user_id", "role", "joined_at")


def team_members(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("team_members")
    for u in range(ctx.plan.internal_users):
        yield (ctx.id("teams", u % ctx.plan.teams), ctx.id("users", u),
               "lead" if u < ctx.plan.teams else "member", dice.timestamp())


IDEA_COLUMNS = ("id", "tenant_id", "product_id", "submitted_by", "title", "description",
                "status", "votes", "created_at", "updated_at")


def ideas(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("ideas")
    for i in range(ctx.plan.ideas):
        iid = ctx.id("ideas", i)
        created = dice.timestamp()
        yield (iid, ctx.tenant_id, ctx.id("products", dice.below(ctx.plan.products)),
               ctx.internal_user(dice), f"{dice.pick(ctx.texts.titles)} (idea {iid})",
               dice.pick(ctx.texts.descriptions),
               dice.pick(("proposed", "under_review", "planned", "rejected")), dice.below(100),
               created, dice.later(created))


WORK_COLUMNS = ("public_id", "title", "description", "status", "priority", "labels",
                "metadata", "created_by", "assignee_id", "due_date", "closed_at", "created_at",
                "updated_at")


def work_item(ctx: Context, dice: Dice) -> Row:
    """The columns epics, features and tasks share, in WORK_COLUMNS order."""
    created = dice.timestamp()
    status = dice.pick(WORK_STATUS_TABLE)
    metadata = (f'{{"component": "{dice.pick(COMPONENTS)}", "sprint": "2024-S'
                f'{1 + dice.below(26):02d}", "story_points": {dice.pick((1, 2, 3, 5, 8))}}}')
    return (dice.uuid(), dice.pick(ctx.texts.titles), dice.pick(ctx.texts.descriptions), status,
            dice.pick(PRIORITY_TABLE), dice.pick(ctx.texts.label_sets), metadata,
            ctx.internal_user(dice), ctx.internal_user(dice) if dice.random() < 0.8 else None,
            dice.due(created, 7, 120) if dice.random() < 0.7 else None,
            dice.later(created, 90) if status in CLOSED_STATUSES else None,
            created, dice.later(created))


EPIC_COLUMNS = ("id", "tenant_id", "product_id", *WORK_COLUMNS)


def epics(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("epics")
    for e in range(ctx.plan.epics):
        yield (ctx.id("epics", e), ctx.tenant_id, ctx.id("products", ctx.product_of_epic(e)),
               *work_item(ctx, dice))


FEATURE_COLUMNS = ("id", "tenant_id", "product_id", "epic_id", *WORK_COLUMNS)


def features(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("features")
    for f in range(ctx.plan.features):
        epic = ctx.epic_of_feature(f)
        yield (ctx.id("features", f), ctx.tenant_id,
               ctx.id("products", ctx.product_of_epic(epic)), ctx.id("epics", epic),
               *work_item(ctx, dice))


TASK_COLUMNS = ("id", "tenant_id", "product_id", "epic_id", "feature_id", "parent_task_id",
                "task_type", "estimate_minutes", *WORK_COLUMNS)


def tasks(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("tasks")
    for t in range(ctx.plan.tasks):
        feature = ctx.feature_of_task(t)
        epic = ctx.epic_of_feature(feature)
        first = ctx.first_task_of_feature(feature)
        # About a quarter of tasks are subtasks of the first task in their feature.
        parent = ctx.id("tasks", first) if t > first and dice.random() < 0.25 else None
        yield (ctx.id("tasks", t), ctx.tenant_id, ctx.id("products", ctx.product_of_epic(epic)),
               ctx.id("epics", epic), ctx.id("features", feature), parent,
               "subtask" if parent else dice.pick(TASK_TYPE_TABLE),
               15 * (1 + dice.below(160)) if dice.random() < 0.8 else None,
               *work_item(ctx, dice))


DEPENDENCY_COLUMNS = ("id", "tenant_id", "task_id", "depends_on_task_id", "dependency_type",
                      "metadata", "created_at")


def task_dependencies(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("task_dependencies")
    n, task_count = ctx.plan.task_dependencies, ctx.plan.tasks
    for k in range(n):
        task = 1 + k * (task_count - 1) // n  # distinct tasks, so no duplicate pairs
        depends_on = task - 1 - dice.below(min(task, 8))
        yield (ctx.id("task_dependencies", k), ctx.tenant_id, ctx.id("tasks", task),
               ctx.id("tasks", depends_on), dice.pick(("blocks", "blocks", "relates_to")),
               f'{{"lag_days": {dice.below(5)}}}', dice.timestamp())


TICKET_COLUMNS = ("id", "public_id", "tenant_id", "product_id", "client_id", "reported_by",
                  "assignee_id", "title", "description", "status", "priority", "metadata",
                  "due_date", "resolved_at", "created_at", "updated_at")


def tickets(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("tickets")
    for i in range(ctx.plan.tickets):
        client = i % ctx.plan.clients
        created = dice.timestamp()
        status = dice.pick(TICKET_STATUS_TABLE)
        yield (ctx.id("tickets", i), dice.uuid(), ctx.tenant_id,
               ctx.id("products", dice.pick(ctx.plan.client_product_indexes(client))),
               ctx.id("clients", client),
               ctx.client_user(client, dice.below(CLIENT_USERS_PER_CLIENT)),
               ctx.internal_user(dice), dice.pick(ctx.texts.titles),
               dice.pick(ctx.texts.descriptions), status, dice.pick(PRIORITY_TABLE),
               f'{{"channel": "{dice.pick(("email", "portal", "phone"))}"}}',
               dice.due(created, 1, 30),
               dice.later(created, 20) if status in ("resolved", "closed") else None,
               created, dice.later(created))


COMMENT_COLUMNS = ("id", "tenant_id", "task_id", "ticket_id", "author_id", "author_name", "body",
                   "metadata", "created_at", "updated_at")


def comments(ctx: Context) -> Iterator[Row]:
    dice = ctx.dice("comments")
    for i in range(ctx.plan.comments):
        on_task = dice.random() < 0.8
        author = dice.below(ctx.plan.internal_users)
        created = dice.timestamp()
        yield (ctx.id("comments", i), ctx.tenant_id,
               ctx.id("tasks", dice.below(ctx.plan.tasks)) if on_task else None,
               None if on_task else ctx.id("tickets", dice.below(ctx.plan.tickets)),
               ctx.id("users", author), person(author), dice.pick(ctx.texts.comments),
               '{"edited": true}' if dice.random() < 0.1 else '{"edited": false}',
               created, created)


ITEM_TAG_COLUMNS = ("id", "tag_id", "epic_id", "task_id", "created_at")


def item_tags(ctx: Context) -> Iterator[Row]:
    """One tag per epic and per task (one row per item, so (tag, item) never repeats)."""
    if not ctx.tag_ids:
        return
    dice = ctx.dice("item_tags")
    row = 0
    for kind, count in (("epics", ctx.plan.epics), ("tasks", ctx.plan.tasks)):
        for i in range(count):
            item = ctx.id(kind, i)
            yield (ctx.id("item_tags", row), dice.pick(ctx.tag_ids),
                   item if kind == "epics" else None, item if kind == "tasks" else None,
                   dice.timestamp())
            row += 1


def item_tag_count(ctx: Context) -> int:
    return ctx.plan.epics + ctx.plan.tasks if ctx.tag_ids else 0


# (table, columns, generator, planned row count) in foreign-key order.
STREAMS = (
    ("clients", CLIENT_COLUMNS, clients, lambda c: c.plan.clients),
    ("products", PRODUCT_COLUMNS, products, lambda c: c.plan.products),
    ("client_products", CLIENT_PRODUCT_COLUMNS, client_products,
     lambda c: sum(len(c.plan.client_product_indexes(i)) for i in range(c.plan.clients))),
    ("users", USER_COLUMNS, users, lambda c: c.plan.users),
    ("teams", TEAM_COLUMNS, teams, lambda c: c.plan.teams),
    ("team_members", TEAM_MEMBER_COLUMNS, team_members, lambda c: c.plan.internal_users),
    ("ideas", IDEA_COLUMNS, ideas, lambda c: c.plan.ideas),
    ("epics", EPIC_COLUMNS, epics, lambda c: c.plan.epics),
    ("features", FEATURE_COLUMNS, features, lambda c: c.plan.features),
    ("tasks", TASK_COLUMNS, tasks, lambda c: c.plan.tasks),
    ("task_dependencies", DEPENDENCY_COLUMNS, task_dependencies,
     lambda c: c.plan.task_dependencies),
    ("tickets", TICKET_COLUMNS, tickets, lambda c: c.plan.tickets),
    ("comments", COMMENT_COLUMNS, comments, lambda c: c.plan.comments),
    ("item_tags", ITEM_TAG_COLUMNS, item_tags, item_tag_count),
)
# Tables whose ids the volume seed hands out (the rest are link tables keyed by their FKs).
ID_TABLES = tuple(t for t, columns, _, _ in STREAMS if columns[0] == "id")
