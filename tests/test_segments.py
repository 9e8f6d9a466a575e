"""The change-segment format (ops.capture.segments): written atomically with a sidecar, read
back exactly and streaming, and every kind of damage refused naming the segment."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import zstandard
from pyrage import x25519

from ops.backup.archive import Archive
from ops.capture.segments import (
    Change,
    Origin,
    Transaction,
    lsn_text,
    parse_lsn,
    parse_segment_name,
    read_segment,
    segment_facts,
    segment_name,
    verify_segment,
    write_segment,
)
from ops.core.errors import BadSegment

ORIGIN = Origin("7300000000000000001", "tasklets")
T0 = datetime(2026, 12, 7, 14, 0, 0, 123456, tzinfo=UTC)


def transactions(start: int, count: int = 3) -> list[Transaction]:
    out = []
    for i in range(count):
        lsn = start + 100 * (i + 1)
        out.append(Transaction(
            700 + i, lsn, lsn + 8, T0 + timedelta(seconds=i),
            [Change("insert", "tasks", {"id": str(i), "title": "é \"q\"", "note": None}),
             Change("update", "tasks", {"id": str(i), "title": "x"}, None, ("description",)),
             Change("delete", "tags", None, {"id": "9"}),
             Change("truncate", "audit")]))
    return out


def write(archive: Archive, start: int = 0x1_0000_0000, count: int = 3, **kw: object):
    txs = transactions(start, count)
    end = txs[-1].end_lsn if txs else start
    return write_segment(archive, txs, start_lsn=start, end_lsn=end, revision="abc123",
                         origin=ORIGIN, **kw), txs


def test_lsn_text_round_trips_and_rejects_garbage() -> None:
    assert lsn_text(0x16_B374D848) == "16/B374D848"
    assert parse_lsn("16/B374D848") == 0x16_B374D848
    assert parse_lsn(lsn_text(0)) == 0
    for bad in ("", "16", "/1", "x/1", "123456789/0"):
        with pytest.raises(ValueError):
            parse_lsn(bad)


def test_names_sort_by_lsn_and_parse_back() -> None:
    names = [segment_name(a, b, encrypted=False) for a, b in
             [(0x9, 0x10), (0x10, 0x1_0000_0000), (0x1_0000_0000, 0x2_0000_0000)]]
    assert names == sorted(names)
    info = parse_segment_name(segment_name(5, 9, encrypted=True))
    assert info is not None and (info.start_lsn, info.end_lsn, info.encrypted) == (5, 9, True)
    assert parse_segment_name("backup-2024-01-08T03-00-00-000Z.json.zst") is None
    assert parse_segment_name(segment_name(5, 9, encrypted=False) + ".sum") is None


def test_a_segment_round_trips_exactly_with_its_sidecar(tmp_path: Path) -> None:
    archive = Archive.at(tmp_path)
    info, txs = write(archive)
    assert info.name == segment_name(info.start_lsn, info.end_lsn, encrypted=False)
    assert (info.first_commit, info.last_commit, info.transactions) == (
        txs[0].commit_time, txs[-1].commit_time, 3)
    assert list(read_segment(archive, info)) == txs
    listed = segment_facts(archive, parse_segment_name(info.name))  # type: ignore[arg-type]
    assert listed.first_commit == txs[0].commit_time
    assert listed.last_commit == txs[-1].commit_time
    assert listed.revision == "abc123"
    check = verify_segment(archive, info)
    assert check.problem is None and check.transactions == 3
    # stock tools read it: zstd frames of JSON lines
    text = zstandard.ZstdDecompressor().decompressobj().decompress(
        (tmp_path / info.name).read_bytes())
    assert text.startswith(b'{"format":"tasklets-changes","version":1')
    assert text.rstrip().splitlines()[-1].startswith(b'{"end":true,"transactions":3')


def test_an_encrypted_segment_needs_the_identity_and_verifies_without_it(
        tmp_path: Path) -> None:
    identity = x25519.Identity.generate()
    archive = Archive.at(tmp_path)
    info, txs = write(archive, recipients=[identity.to_public()])
    assert info.name.endswith(".jsonl.zst.age") and info.encrypted
    assert list(read_segment(archive, info, identities=[identity])) == txs
    assert verify_segment(archive, info).problem is None  # sidecar only
    assert verify_segment(archive, info, identities=[identity]).transactions == 3
    data = bytearray((tmp_path / info.name).read_bytes())
    data[-40] ^= 1
    (tmp_path / info.name).write_bytes(bytes(data))
    assert "sha256" in (verify_segment(archive, info).problem or "")
    with pytest.raises(BadSegment, match=info.name):
        list(read_segment(archive, info, identities=[identity]))


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-sidecar-truncate"])
def test_damage_is_refused_naming_the_segment(tmp_path: Path, damage: str) -> None:
    archive = Archive.at(tmp_path)
    info, _ = write(archive, count=50)
    path = tmp_path / info.name
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        data = data[: len(data) - 30]
        if damage == "no-sidecar-truncate":
            (tmp_path / (info.name + ".sum")).unlink()
    path.write_bytes(bytes(data))
    with pytest.raises(BadSegment, match=f"bad change segment {info.name}"):
        list(read_segment(archive, info))
    assert verify_segment(archive, info).problem


def test_a_segment_whose_content_is_not_its_names_range_is_refused(tmp_path: Path) -> None:
    archive = Archive.at(tmp_path)
    info, _ = write(archive)
    other = segment_name(info.start_lsn, info.end_lsn + 1, encrypted=False)
    (tmp_path / other).write_bytes((tmp_path / info.name).read_bytes())
    moved = parse_segment_name(other)
    assert moved is not None
    with pytest.raises(BadSegment, match="not the range its name says"):
        list(read_segment(archive, moved))


def test_a_rewritten_line_with_the_old_trailer_fails_the_checksum(tmp_path: Path) -> None:
    archive = Archive.at(tmp_path)
    info, _ = write(archive)
    (tmp_path / (info.name + ".sum")).unlink()  # only the trailer can tell
    path = tmp_path / info.name
    text = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    path.write_bytes(zstandard.ZstdCompressor().compress(text.replace(b'"x"', b'"y"')))
    with pytest.raises(BadSegment, match="sha256"):
        list(read_segment(archive, info))


def test_another_revision_is_refused_when_one_is_expected(tmp_path: Path) -> None:
    archive = Archive.at(tmp_path)
    info, txs = write(archive)
    assert list(read_segment(archive, info, revision="abc123")) == txs
    with pytest.raises(BadSegment, match="cross a migration"):
        list(read_segment(archive, info, revision="def456"))


def test_writing_a_range_stored_already_keeps_the_stored_one(tmp_path: Path) -> None:
    archive = Archive.at(tmp_path)
    info, txs = write(archive)
    before = (tmp_path / info.name).read_bytes()
    again, _ = write(archive)
    assert again.name == info.name and (tmp_path / info.name).read_bytes() == before
    assert list(read_segment(archive, again)) == txs


def test_a_range_stored_without_its_sidecar_gets_it_when_written_again(
        tmp_path: Path) -> None:
    """A capture killed between publishing a segment and its sidecar stores the range again
    when it restarts: the stored segment is kept and gets its sidecar (coverage, `restore
    --at latest` and `verify --changes` without the identity read it)."""
    archive = Archive.at(tmp_path)
    identity = x25519.Identity.generate()
    info, txs = write(archive, recipients=[identity.to_public()])
    stored = (tmp_path / info.name).read_bytes()
    (tmp_path / (info.name + ".sum")).unlink()  # the kill: published, no sidecar yet
    again, _ = write(Archive.at(tmp_path), recipients=[identity.to_public()])
    assert (tmp_path / info.name).read_bytes() == stored
    assert again.last_commit == txs[-1].commit_time
    archive = Archive.at(tmp_path)
    listed = segment_facts(archive, parse_segment_name(info.name))  # type: ignore[arg-type]
    assert listed.last_commit == txs[-1].commit_time and listed.transactions == len(txs)
    check = verify_segment(archive, listed)
    assert check.problem is None and check.checked == "stored bytes against its sidecar"
    assert list(read_segment(archive, listed, identities=[identity])) == txs


def test_a_failed_write_publishes_nothing(tmp_path: Path) -> None:
    archive = Archive.at(tmp_path)
    txs = transactions(100)
    with pytest.raises(ValueError, match="outside or out of order"):
        write_segment(archive, txs, start_lsn=100, end_lsn=txs[0].end_lsn,
                      revision="abc123", origin=ORIGIN)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_segment_records_how_long_it_covers(tmp_path: Path) -> None:
    archive = Archive.at(tmp_path)
    until = T0 + timedelta(minutes=5)
    info = write_segment(archive, [], start_lsn=10, end_lsn=10, revision="abc123",
                         origin=ORIGIN, complete_until=until)
    assert info.transactions == 0 and info.first_commit is None
    listed = segment_facts(archive, parse_segment_name(info.name))  # type: ignore[arg-type]
    assert listed.complete_until == until
    assert list(read_segment(archive, info)) == []


@pytest.mark.parametrize(("change", "why"), [
    ({"op": "insert", "table": "tasks"}, "an insert without its row"),
    ({"op": "update", "table": "tasks", "key": {"id": "1"}}, "an update without its row"),
    ({"op": "delete", "table": "tasks"}, "a delete without its key"),
    ({"op": "merge", "table": "tasks"}, "unknown change 'merge'"),
    ({"op": "insert", "table": 7, "row": {}}, "unknown change 'insert'"),
    ({"op": "insert", "table": "tasks", "row": {"id": 1}}, "not an object of text or null"),
    ({"op": "insert", "table": "tasks", "row": ["1"]}, "not an object of text or null"),
    ({"op": "update", "table": "tasks", "row": {}, "unchanged": "description"},
     "unchanged is not a list"),
])
def test_a_checksummed_but_malformed_change_is_refused_in_one_line(
        tmp_path: Path, change: dict, why: str) -> None:
    """A line whose trailer and checksum agree (written by hand, not by capture) but whose
    change is not one replay can apply is refused naming the line, not applied half-read."""
    archive = Archive.at(tmp_path)
    info, _ = write(archive, count=1)
    (tmp_path / (info.name + ".sum")).unlink()  # only the trailer can tell
    path = tmp_path / info.name
    header, line, _ = zstandard.ZstdDecompressor().decompressobj().decompress(
        path.read_bytes()).splitlines(keepends=True)
    item = orjson.loads(line)
    item["changes"] = [change]
    line = orjson.dumps(item) + b"\n"
    trailer = orjson.dumps({"end": True, "transactions": 1, "changes": 1,
                            "sha256": hashlib.sha256(header + line).hexdigest()}) + b"\n"
    path.write_bytes(zstandard.ZstdCompressor().compress(header + line + trailer))
    with pytest.raises(BadSegment, match=f"transaction line 1 is malformed .*{why}"):
        list(read_segment(archive, info))
