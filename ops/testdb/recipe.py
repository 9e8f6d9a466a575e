"""What a template is built from, and the hash that names it.

A template is `push` (every migration) + an optional snapshot (a backup, anonymized unless
said otherwise, from any store) + the chosen seeds (lookups, sample, any seeds/NAME.py), in
that order. Its hash covers everything that could change the result: the migration files,
the seed code and data (the built-in seeds' package, or the custom seed file and the
`_*.py` helpers beside it), and the snapshot's own checksums. The same inputs give the same
hash on any machine, so an unchanged hash means the template can be reused as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ops.backup.archive import Archive
from ops.backup.encryption import identities_for
from ops.backup.reader import backup_meta
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import NotFound, UsageError
from ops.seed.custom import BUILTIN_SEEDS, custom_seed_files
from ops.testdb.marks import HASH_LENGTH

# Bumped when the way templates are built changes, so older templates are not reused.
RECIPE_VERSION = "1"
MIGRATION_FILES = ("migrations", "alembic.ini")
BUILTIN_SEED_CODE = PROJECT_ROOT / "ops" / "seed"


@dataclass(frozen=True)
class Recipe:
    seeds: tuple[str, ...] = ()
    snapshot: str | None = None  # a backup: a name in BACKUP_DIR, a path or an object URL

    @property
    def family(self) -> str:
        """What the template is, whatever its inputs' versions: a newer hash of the same
        family replaces an older one."""
        parts = ["push"]
        if self.snapshot:
            parts.append(f"snapshot {self.snapshot}")
        parts.extend(self.seeds)
        return " + ".join(parts)

    @classmethod
    def from_request(cls, seeds: object = (), snapshot: object = None) -> Recipe:
        # read once: a generator checked and then copied would come back empty
        items = seeds or ()
        names = None if isinstance(seeds, str) or not isinstance(items, Iterable) \
            else tuple(items)
        if names is None or not all(isinstance(s, str) and s for s in names):
            raise UsageError("seeds must be a list of seed names, e.g. [\"lookups\", \"sample\"]")
        if snapshot is not None and not (isinstance(snapshot, str) and snapshot):
            raise UsageError("snapshot must be a backup's name, path or URL")
        return cls(names, snapshot or None)


DEFAULT_RECIPE = Recipe()  # the schema at head, no data


def recipe_hash(recipe: Recipe, settings: Settings) -> str:
    """The template hash of `recipe` as the inputs stand now."""
    digest = hashlib.sha256(f"tasklets-testdb {RECIPE_VERSION}\n".encode())
    digest.update(_files_digest([PROJECT_ROOT / name for name in MIGRATION_FILES]))
    if recipe.snapshot:
        digest.update(b"snapshot " + _snapshot_digest(recipe.snapshot, settings))
    customs = custom_seed_files(settings.seeds_dir)
    for name in recipe.seeds:
        digest.update(f"seed {name}\n".encode())
        if name in BUILTIN_SEEDS:
            digest.update(_files_digest([BUILTIN_SEED_CODE]))
        elif name in customs:
            path = customs[name]
            helpers = sorted(path.parent.glob("_*.py"))
            digest.update(_files_digest([path, *helpers]))
        else:
            available = ", ".join([*BUILTIN_SEEDS, *customs])
            raise NotFound(f"no seed named {name!r} (looked in {settings.seeds_dir}/)",
                           hint=f"Available seeds: {available}.")
    return digest.hexdigest()[:HASH_LENGTH]


def _files_digest(paths: list[Path]) -> bytes:
    """sha256 over every file's path (relative to its root) and bytes, in a stable order;
    caches (__pycache__) left out."""
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = path.relative_to(root.parent).as_posix()
            data = path.read_bytes()
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
    return digest.digest()


def _snapshot_digest(source: str, settings: Settings) -> bytes:
    """The snapshot's checksum: its meta's per-table sha256 and row counts (what a restore
    checks every row against), else - a file without them - the sha256 of its bytes."""
    ref = Archive.from_settings(settings).resolve(source)
    meta = backup_meta(ref, identities_for(settings)) or {}
    if meta.get("sha256"):
        kept = {key: meta.get(key) for key in ("sha256", "rowCounts", "alembicRevision",
                                               "anonymized", "tenant")}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).digest()
    digest = hashlib.sha256()
    with ref.open() as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.digest()
