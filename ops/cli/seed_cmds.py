"""Seed commands: `seed lookups|sample|demo|list|run`, bare `seed` (legacy), and `fresh`."""

from __future__ import annotations

from typing import Annotated

import typer

from ops.cli.app import IdentityOption, JsonOption, app, reporter, settings
from ops.core.defaults import DEFAULT_RANDOM_SEED
from ops.core.errors import UsageError
from ops.core.output import Reporter, print_json

seed_app = typer.Typer(
    help="Seed lookups, sample data, volume data (--scale) and custom seeds (seeds/*.py).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(seed_app, name="seed")

ScaleOption = Annotated[float, typer.Option(
    "--scale", min=0, help="Also generate N units of volume data (~29k rows each; fractions "
    "allowed).")]
RandomSeedOption = Annotated[int, typer.Option(
    "--random-seed", help="Seed for --scale data: the same seed gives identical rows.")]
AllowProductionOption = Annotated[bool, typer.Option(
    "--allow-production", help="Seed sample users (known password) into a production database.")]


def _legacy_notice(out: Reporter, alias: str, runs: str) -> None:
    out.warn(f"ℹ️  `tasklets-db {alias}` is a legacy alias for {runs}; prefer those commands.")


def _seed(as_json: bool, **options: object) -> None:
    from ops.seed.builtin import run_seeds

    # options are run_seeds' keyword arguments, passed through:
    result = run_seeds(settings(), report=reporter(as_json), **options)  # type: ignore[arg-type]
    if as_json:
        print_json(result)


@seed_app.callback()
def seed(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Without a subcommand (legacy): lookups + sample in one transaction."""
    if ctx.invoked_subcommand is not None:
        return
    _legacy_notice(reporter(as_json), "seed", "`seed lookups` + `seed sample`")
    _seed(as_json, lookups=True, sample=True)


@seed_app.command()
def lookups(as_json: JsonOption = False) -> None:
    """Create the SysTech tenant and the 18 reference tags (idempotent)."""
    _seed(as_json, lookups=True, sample=False)


@seed_app.command()
def sample(
    scale: ScaleOption = 0,
    random_seed: RandomSeedOption = DEFAULT_RANDOM_SEED,
    allow_production: AllowProductionOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create the sample tenant data; users get password Systech@123 (needs `seed lookups`)."""
    _seed(as_json, lookups=False, sample=True, scale=scale, random_seed=random_seed,
          allow_production=allow_production)


@seed_app.command()
def demo(allow_production: AllowProductionOption = False, as_json: JsonOption = False) -> None:
    """Legacy alias for `seed sample`."""
    _legacy_notice(reporter(as_json), "seed demo", "`seed sample`")
    _seed(as_json, lookups=False, sample=True, allow_production=allow_production)


@seed_app.command("list")
def list_seeds(as_json: JsonOption = False) -> None:
    """List built-in and custom seeds (SEEDS_DIR, default ./seeds) with their descriptions."""
    from ops.seed import custom as custom_seeds

    cfg = settings()
    seeds = custom_seeds.available_seeds(cfg.seeds_dir)
    if as_json:
        print_json(seeds)
        return
    out = reporter()
    out.line("🌱 Built-in seeds:")
    for info in (s for s in seeds if s.builtin):
        out.line(f"   {info.name:<24} {info.summary}")
    custom = [s for s in seeds if not s.builtin]
    out.line(f"🧩 Custom seeds ({cfg.seeds_dir}):")
    if not custom:
        out.line("   none yet — add seeds/NAME.py defining run(conn, report)")
    for info in custom:
        out.line(f"   {info.name:<24} {info.summary}")


@seed_app.command("run")
def run_seed(
    name: Annotated[str, typer.Argument(help="A seed from `seed list` (seeds/NAME.py).")],
    as_json: JsonOption = False,
) -> None:
    """Run one seed in a transaction: committed on success, rolled back on any error."""
    from ops.seed import custom as custom_seeds

    result = custom_seeds.run_seed(settings(), name, reporter(as_json))
    if as_json:
        print_json(result)


@app.command()
def fresh(
    source: Annotated[str | None, typer.Option(
        "--from", help="Restore this anonymized snapshot (a name in BACKUP_DIR, a path or an "
        "object URL such as s3://bucket/snapshot.json.zst.age) after push, instead of "
        "seeding.")] = None,
    identity: IdentityOption = None,
    allow_real_data: Annotated[bool, typer.Option(
        "--allow-real-data", help="With --from: accept a backup that is not anonymized.")]
    = False,
    allow_production: AllowProductionOption = False,
    as_json: JsonOption = False,
) -> None:
    """push + seed lookups + seed sample: a ready database; changes nothing if already fresh."""
    if source is not None:
        from ops.restore.snapshot import fresh_from_snapshot

        snapshot = fresh_from_snapshot(settings(), source, identity=identity,
                                       allow_real_data=allow_real_data,
                                       allow_production=allow_production,
                                       report=reporter(as_json))
        if as_json:
            print_json(snapshot)
        return
    if allow_real_data:
        raise UsageError("--allow-real-data only applies with --from",
                         hint="Name the snapshot: --from FILE.")
    from ops.seed.builtin import fresh as fresh_database

    result = fresh_database(settings(), allow_production=allow_production,
                            report=reporter(as_json))
    if as_json:
        print_json({"changed": result.changed, "push": result.push, "seed": result.seed})
