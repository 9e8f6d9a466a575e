"""The storage module against real servers: a local directory, moto (S3), gcp-storage-emulator
(GCS) and Azurite (Azure). Every behaviour is checked on each backend."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from support.storage import (
    Backend,
    Server,
    azure_connection_string,
    child_env,
    start_server,
    use_server_env,
)

from ops.backup.storage import azure, gcs, interface, local, s3
from ops.backup.storage.factory import open_object, open_store
from ops.backup.storage.interface import ObjectExistsError
from ops.core.errors import OpsError

pytest_plugins = ["support.storage_servers"]

PART = 5 << 20  # the smallest part S3 accepts: several parts without much data
SECRET = "wrong-secret-Zq8vX2"


def payload(size: int) -> bytes:
    """Incompressible, position-dependent bytes: a shifted or repeated part shows."""
    block = hashlib.sha256(b"payload").digest() * 2048  # 64 KiB
    return b"".join(hashlib.sha256(block + i.to_bytes(8, "big")).digest() + block[:65504]
                    for i in range(size // 65536 + 1))[:size]


def write_object(store: interface.Store, name: str, data: bytes, *, chunk: int = 1 << 20,
                 part_size: int = PART) -> int:
    with store.open_writer(name, part_size=part_size) as writer:
        for start in range(0, len(data), chunk):
            writer.write(data[start:start + chunk])
        return writer.commit()


def one_line(exc: pytest.ExceptionInfo[OpsError]) -> str:
    message = exc.value.message
    assert "\n" not in message and "Traceback" not in message
    return message


# --- Locations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["s4://bucket/prefix", "gcs://bucket", "http://host/x",
                                      "s3:/bucket/prefix", "s3//bucket", "gs:bucket",
                                      "azure:/container", "s3://", "s3:///prefix",
                                      "file://host/path"])
def test_a_misspelt_location_is_refused_naming_it_and_the_accepted_forms(location: str) -> None:
    with pytest.raises(OpsError) as exc:
        open_store(location)
    assert location.split("/")[0].rstrip(":") in one_line(exc)
    assert "s3://bucket/prefix" in (exc.value.hint or "")


def test_credentials_written_into_a_location_are_refused_and_never_echoed() -> None:
    with pytest.raises(OpsError) as exc:
        open_store(f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix")
    assert SECRET not in one_line(exc) and SECRET not in (exc.value.hint or "")


def test_locations_name_their_kind_of_store(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), local.LocalStore)
    assert open_store(f"file://{tmp_path}").directory == tmp_path  # type: ignore[attr-defined]
    assert str(open_store("s3://bucket/a/b/")) == "s3://bucket/a/b"
    assert str(open_store("az://container")) == "az://container"
    assert isinstance(open_store("azure://container/x"), azure.AzureStore)
    assert isinstance(open_store("gs://bucket/x"), gcs.GCSStore)


def test_open_object_splits_a_location_into_its_store_and_name(tmp_path: Path) -> None:
    store, name = open_object("s3://bucket/dir/sub/backup-1.json")
    assert (str(store), name) == ("s3://bucket/dir/sub", "backup-1.json")
    store, name = open_object("gs://bucket/backup-1.json.gz")
    assert (str(store), name) == ("gs://bucket", "backup-1.json.gz")
    store, name = open_object(f"file://{tmp_path}/backup-2.json")
    assert (str(store), name) == (str(tmp_path), "backup-2.json")
    store, name = open_object(tmp_path / "b.json")
    assert (str(store), name) == (str(tmp_path), "b.json")
    with pytest.raises(OpsError):
        open_object("s3://bucket")


# --- Every backend -----------------------------------------------------------------------------


def test_an_object_appears_only_at_commit_and_reads_back_whole_and_by_tail(
        backend: Backend) -> None:
    store = open_store(backend.location)
    data = payload(2 * PART + 12345)
    with store.open_writer("backup-a.json", part_size=PART) as writer:
        for start in range(0, len(data), 1 << 20):
            writer.write(data[start:start + (1 << 20)])
        assert store.list() == [] and not store.exists("backup-a.json")
        assert writer.commit() == len(data)
    [info] = store.list()
    assert (info.name, info.size) == ("backup-a.json", len(data))
    assert info.modified.tzinfo is not None
    assert store.exists("backup-a.json")
    with store.open_reader("backup-a.json") as reader:
        first = reader.read(1000)
        rest = reader.read()
    assert hashlib.sha256(first + rest).digest() == hashlib.sha256(data).digest()
    assert store.read_tail("backup-a.json", 4096) == data[-4096:]
    assert store.read_tail("backup-a.json", 4096, size=len(data)) == data[-4096:]
    assert store.incomplete_uploads() == []
    store.delete("backup-a.json")
    assert store.list() == [] and not store.exists("backup-a.json")
    store.delete("backup-a.json")  # already gone: not an error


def test_gzip_and_line_reading_work_over_the_reader(backend: Backend) -> None:
    store = open_store(backend.location)
    lines = [f'{{"row": {i}, "text": "{"x" * (i % 50)}"}}\n'.encode() for i in range(20000)]
    with store.open_writer("backup-b.json.gz") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
            gz.writelines(lines)
        raw.commit()
    with store.open_reader("backup-b.json.gz") as reader, \
            gzip.GzipFile(fileobj=reader, mode="rb") as gz:
        assert list(gz) == lines
    with store.open_writer("plain.txt") as raw:
        raw.write(b"".join(lines[:100]))
        raw.commit()
    with store.open_reader("plain.txt") as reader:
        assert reader.readline() == lines[0]
        assert list(reader) == lines[1:100]


def test_short_and_empty_objects_and_nested_prefixes(backend: Backend) -> None:
    store = open_store(backend.location)
    write_object(store, "short", b"0123456789")
    write_object(store, "empty", b"")
    assert store.read_tail("short", 4) == b"6789"
    assert store.read_tail("short", 1000) == b"0123456789"
    assert store.read_tail("empty", 10) == b""
    with store.open_reader("empty") as reader:
        assert reader.read() == b""
    write_object(open_store(f"{backend.location}/nested"), "deeper", b"not directly under")
    assert {o.name: o.size for o in store.list()} == {"empty": 0, "short": 10}


def test_commit_never_overwrites_an_existing_object(backend: Backend) -> None:
    store = open_store(backend.location)
    write_object(store, "backup-c.json", b"first")
    with pytest.raises(ObjectExistsError) as exc:
        write_object(store, "backup-c.json", payload(PART + 10))
    assert "backup-c.json" in one_line(exc) and "already exists" in exc.value.message
    with store.open_reader("backup-c.json") as reader:
        assert reader.read() == b"first"
    writer = store.open_writer("backup-c2.json", part_size=PART)
    writer.write(payload(PART + 10))
    write_object(store, "backup-c2.json", b"written meanwhile")
    with pytest.raises(ObjectExistsError):
        writer.commit()
    with store.open_reader("backup-c2.json") as reader:
        assert reader.read() == b"written meanwhile"
    assert store.incomplete_uploads() == []


def test_an_aborted_or_failed_writer_leaves_nothing(backend: Backend) -> None:
    store = open_store(backend.location)
    writer = store.open_writer("backup-d.json", part_size=PART)
    writer.write(payload(2 * PART + 1))
    writer.abort()
    with pytest.raises(RuntimeError), store.open_writer("backup-e.json", part_size=PART) as w:
        w.write(payload(2 * PART + 1))
        raise RuntimeError("the backup failed")
    with store.open_writer("backup-f.json") as w:
        w.write(b"left without commit")
    assert store.list() == []
    assert store.incomplete_uploads() == []


def test_missing_objects_are_one_line(backend: Backend) -> None:
    store = open_store(backend.location)
    for call in (lambda: store.open_reader("backup-none.json"),
                 lambda: store.read_tail("backup-none.json", 10)):
        with pytest.raises(OpsError) as exc:
            call()
        assert "backup-none.json" in one_line(exc)


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from ops.backup.storage.factory import open_store
    store = open_store(sys.argv[1])
    writer = store.open_writer("backup-killed.json", part_size={part})
    writer.write(b"k" * ({part} * 2 + 100))
    while getattr(writer, "uploaded", {part} * 2) < {part} * 2:
        time.sleep(0.01)
    print("READY", flush=True)
    time.sleep(60)
""").format(part=PART)


@pytest.mark.faults
def test_a_killed_writer_leaves_no_object_and_an_incomplete_upload_that_can_be_aborted(
        backend: Backend) -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, backend.location],
                             stdout=subprocess.PIPE, env=child_env(), text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    store = open_store(backend.location)
    assert store.list() == [] and not store.exists("backup-killed.json")
    [upload] = store.incomplete_uploads()
    assert upload.name == "backup-killed.json"
    # moto dates every upload 2010-11-10: 50 years still counts as "not that old"
    assert store.abort_incomplete(timedelta(days=365 * 50)) == []
    assert store.abort_incomplete(timedelta(0)) == [upload]
    assert store.incomplete_uploads() == [] and store.list() == []


def test_a_missing_bucket_is_one_line(backend: Backend) -> None:
    if backend.server is None:
        store = open_store(Path(backend.location) / "no" / "such")
        with pytest.raises(OpsError) as exc:
            store.open_writer("backup-g.json")
        assert "does not exist" in one_line(exc)
        return
    store = open_store(f"{backend.kind}://no-such-bucket-{os.getpid()}/x")
    for call in (store.list, lambda: store.exists("b"), lambda: store.open_reader("b"),
                 lambda: write_object(store, "b", b"data")):
        with pytest.raises(OpsError) as exc:
            call()
        assert f"no-such-bucket-{os.getpid()} does not exist" in one_line(exc)


def test_wrong_credentials_are_one_line_that_names_the_variables_and_no_secret(
        cloud_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = cloud_backend
    if backend.kind == "s3":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        variable = "AWS_SECRET_ACCESS_KEY"
    elif backend.kind == "az":
        assert backend.server is not None
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                           azure_connection_string(backend.server.port,
                                                   key="V3Jvbmcta2V5LVpxOHZYMg=="))
        variable = "AZURE_STORAGE_CONNECTION_STRING"
    else:
        # The emulator accepts any request, so the refusal checked here is the client's own:
        # a credentials file that is not one (real GCS refuses bad keys the same way).
        monkeypatch.delenv("STORAGE_EMULATOR_HOST")
        key_file = tmp_path / "key.json"
        key_file.write_text(f'{{"type": "service_account", "private_key": "{SECRET}"}}')
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        variable = "GOOGLE_APPLICATION_CREDENTIALS"
    store = open_store(backend.location)
    for call in (store.list, lambda: write_object(store, "backup-h.json", b"data")):
        with pytest.raises(OpsError) as exc:
            call()
        message = one_line(exc)
        assert "credentials" in message
        assert variable in (exc.value.hint or "")
        assert SECRET not in message + (exc.value.hint or "") + str(store)


@pytest.mark.faults
@pytest.mark.parametrize("kind", ["s3", "gs", "az"])
def test_a_server_stopped_mid_upload_and_mid_read_is_one_line(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_server(kind)
    try:
        use_server_env(monkeypatch, server)
        for module in (gcs, azure):
            monkeypatch.setattr(module, "RETRY_SECONDS", 1)
        store = open_store(server.location("stopped"))
        data = payload(4 * PART)
        write_object(store, "backup-i.json", data)
        reader = store.open_reader("backup-i.json")
        assert reader.read(1 << 20) == data[:1 << 20]
        writer = store.open_writer("backup-j.json", part_size=PART)
        writer.write(data[:PART + 1])
        server.stop()
        with pytest.raises(OpsError) as exc:
            while reader.read(1 << 20):
                pass
        assert "backup-i.json failed" in one_line(exc)
        with pytest.raises(OpsError):  # the failure stays: never mistaken for the end
            reader.read(1)
        with pytest.raises(OpsError) as exc:
            writer.write(data[:2 * PART])
            writer.commit()
        assert "backup-j.json" in one_line(exc)
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["s3", "gs", "az"])
def test_a_bucket_deleted_mid_upload_is_one_line(
        kind: str, storage_servers: Callable[[str], Server],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = storage_servers(kind)
    use_server_env(monkeypatch, server)
    bucket = f"doomed-{os.getpid()}"
    store = open_store(server.location("x", bucket=bucket))
    _make_bucket(kind, bucket)
    writer = store.open_writer("backup-k.json", part_size=PART)
    writer.write(payload(PART + 1))
    while writer.uploaded < PART:  # type: ignore[attr-defined]  # the first part is in
        time.sleep(0.01)
    _delete_bucket(kind, bucket)
    with pytest.raises(OpsError) as exc:
        writer.write(payload(PART))
        writer.commit()
    assert "backup-k.json" in one_line(exc)


def _make_bucket(kind: str, bucket: str) -> None:
    if kind == "s3":
        import boto3

        boto3.client("s3").create_bucket(Bucket=bucket)
    elif kind == "gs":
        from google.cloud import storage as gcs

        gcs.Client(project="test").create_bucket(bucket)
    else:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(
            os.environ["AZURE_STORAGE_CONNECTION_STRING"]).create_container(bucket)


def _delete_bucket(kind: str, bucket: str) -> None:
    if kind == "s3":
        import boto3

        client = boto3.client("s3")
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
        # the writer's own record of its upload is an object too: a deleted bucket loses it
        for found in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=found["Key"])
        client.delete_bucket(Bucket=bucket)
    elif kind == "gs":
        from google.cloud import storage as gcs

        gcs.Client(project="test").bucket(bucket).delete(force=True)
    else:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(
            os.environ["AZURE_STORAGE_CONNECTION_STRING"]).delete_container(bucket)


# --- Backend specifics -------------------------------------------------------------------------


def test_local_objects_are_private_and_published_by_link(tmp_path: Path) -> None:
    store = open_store(tmp_path / "backups")
    seen: list[tuple[int, int]] = []
    with store.open_writer("backup-l.json") as writer:
        writer.write(b"data")
        [temp] = (tmp_path / "backups").glob(".backup-l.json.*.partial")
        seen.append((stat.S_IMODE(temp.stat().st_mode),
                     stat.S_IMODE((tmp_path / "backups").stat().st_mode)))
        [upload] = store.incomplete_uploads()
        assert upload.name == "backup-l.json"
        writer.commit()
    assert seen == [(0o600, 0o700)]
    assert stat.S_IMODE((tmp_path / "backups" / "backup-l.json").stat().st_mode) == 0o600
    assert list((tmp_path / "backups").glob(".*")) == []
    (tmp_path / "outside").write_text("x")
    (tmp_path / "backups" / "link.json").symlink_to(tmp_path / "outside")
    assert [o.name for o in store.list()] == ["backup-l.json"]


def test_gcs_composes_many_parts_in_a_tree(storage_servers: Callable[[str], Server],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    server = storage_servers("gs")
    use_server_env(monkeypatch, server)
    store = open_store(server.location("compose"))
    data = payload(70 * 1024)
    write_object(store, "many-parts", data, chunk=1000, part_size=1024)  # 70 parts
    with store.open_reader("many-parts") as reader:
        assert reader.read() == data
    assert store.incomplete_uploads() == []


MEMORY_PROBE = textwrap.dedent("""
    import sys
    from ops.backup.storage.factory import open_store
    store = open_store(sys.argv[1])
    block = bytes(range(256)) * 4096
    with store.open_writer("big") as writer:
        for _ in range(int(sys.argv[2])):
            writer.write(block)
        writer.commit()
    with store.open_reader("big") as reader:
        while reader.read(1 << 20):
            pass
    store.delete("big")
    # VmHWM, not ru_maxrss: the latter inherits the parent's size across fork and exec
    print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
""")


def test_memory_does_not_grow_with_the_size_of_an_upload_or_download(
        storage_servers: Callable[[str], Server], monkeypatch: pytest.MonkeyPatch) -> None:
    server = storage_servers("s3")
    use_server_env(monkeypatch, server)

    def peak_mib(megabytes: int) -> int:
        run = subprocess.run([sys.executable, "-c", MEMORY_PROBE, server.location("memory"),
                              str(megabytes)], capture_output=True, text=True, env=child_env(),
                             check=True)
        return int(run.stdout) // 1024

    small, large = peak_mib(24), peak_mib(120)
    assert large - small < 16, (small, large)


def test_s3_completion_is_conditional_when_an_object_appears_after_the_check(
        storage_servers: Callable[[str], Server], monkeypatch: pytest.MonkeyPatch) -> None:
    server = storage_servers("s3")
    use_server_env(monkeypatch, server)
    store = open_store(server.location("race"))
    write_object(store, "backup-p.json", b"theirs")
    # the object appears between the existence check and the completion
    monkeypatch.setattr(s3.S3Store, "exists", lambda self, name: False)
    with pytest.raises(ObjectExistsError):
        write_object(store, "backup-p.json", b"mine")
    with store.open_reader("backup-p.json") as reader:
        assert reader.read() == b"theirs"
    assert store.incomplete_uploads() == []
