"""`backups --chart`: an SVG of the full backups' size and duration over time, read back as
XML - valid, and carrying every full backup's figures (not compared as a picture). The bench's
charts are checked in test_bench.py on a real run."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pyrage import x25519
from support.restore import insert_sample

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.files import read_meta
from ops.backup.integrity import SIDECAR_SUFFIX
from ops.core.config import Settings

SVG = "{http://www.w3.org/2000/svg}"


def points(svg: Path, panel: str) -> list[dict[str, str]]:
    """The data points of one panel, in file order (oldest first)."""
    root = ET.parse(svg).getroot()  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return [dict(mark.attrib, title=mark.find(f"{SVG}title").text)
            for mark in root.iter(f"{SVG}circle") if mark.get("data-panel") == panel]


def test_a_backup_records_how_long_it_took_in_its_meta(settings: Settings, sample: dict):
    started = time.monotonic()
    made = backup(settings)
    took = time.monotonic() - started

    duration = read_meta(made.path)["durationSeconds"]
    assert 0 < duration <= took


def test_backups_chart_draws_each_full_backups_size_and_duration_and_nothing_else(
        settings: Settings, conn, run_cli_process, tmp_path: Path):
    small = backup(settings)  # the empty schema
    insert_sample(conn)
    large = backup(settings, compression="zstd")
    backup(settings, tenant="SysTech")  # other kinds: not charted
    backup(settings, tables=["tenants"])
    sealed = backup(settings, encrypt_to=str(x25519.Identity.generate().to_public()))
    # an older version's encrypted backup (no sidecar): kind unknown, left out
    sealed.path.with_name(sealed.name + SIDECAR_SUFFIX).unlink()
    charts = tmp_path / "charts"
    charts.mkdir()
    chart = charts / "backups.svg"

    done = run_cli_process("backups", "--chart", str(chart))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"📈 Chart of 2 full backup(s) in {settings.backup_dir} "
                                   f"written to {chart} (1 left out: their kind or "
                                   "completeness is unknown)")
    sizes, durations = points(chart, "Size"), points(chart, "Duration")
    assert [p["data-label"] for p in sizes] == [small.name, large.name]
    listed = {b.name: b for b in Archive.at(settings.backup_dir).backups()}
    assert [float(p["data-value"]) for p in sizes] == [listed[small.name].size,
                                                       listed[large.name].size]
    assert [float(p["data-value"]) for p in durations] == [
        read_meta(made.path)["durationSeconds"] for made in (small, large)]
    assert all(p["data-time"] == listed[p["data-label"]].timestamp.isoformat() for p in sizes)
    assert sizes[0]["title"].startswith(f"{small.name}: ")
    # drawn to scale: the bigger backup's point is higher (smaller y), the later one further right
    bigger = 1 if listed[large.name].size > listed[small.name].size else 0
    assert float(sizes[bigger]["cy"]) < float(sizes[1 - bigger]["cy"])
    assert float(sizes[1]["cx"]) > float(sizes[0]["cx"])
    assert oct(chart.stat().st_mode & 0o777) == "0o644"
    assert list(charts.iterdir()) == [chart]  # no temp file left beside it


def test_backups_chart_says_in_one_line_what_is_missing(settings: Settings, run_cli_process,
                                                        tmp_path: Path):
    empty = run_cli_process("backups", "--chart", str(tmp_path / "chart.svg"))
    backup(settings)
    nowhere = run_cli_process("backups", "--chart", str(tmp_path / "no-such-dir" / "c.svg"))
    mixed = run_cli_process("backups", "--chart", str(tmp_path / "c.svg"), "--verify")

    assert empty.returncode == 1, empty.stderr
    assert empty.stderr.startswith(f"❌ no full backups in {settings.backup_dir} to chart")
    assert nowhere.returncode == 1
    assert nowhere.stderr.startswith(f"❌ cannot write the chart {tmp_path / 'no-such-dir'}")
    assert mixed.returncode == 2 and "--chart and --verify do not mix" in mixed.stderr
    for result in (empty, nowhere, mixed):
        assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("*.svg")) == []
