"""age encryption: round trips, interchange with the stock `age` CLI both ways, refusals (no or
wrong identity, tampered, truncated, not age) and bounded memory on a large stream."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519
from support.storage import Backend, child_env

from ops.backup.encryption import (
    IDENTITY_VARIABLE,
    RECIPIENTS_VARIABLE,
    decrypting_reader,
    encrypting_writer,
    is_encrypted,
    load_identities,
    parse_recipients,
)
from ops.backup.storage.factory import open_store
from ops.core.errors import OpsError

pytest_plugins = ["support.storage_servers"]


def plaintext(size: int) -> bytes:
    block = hashlib.sha256(b"plain").digest() * 2048
    return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[:65504]
                    for i in range(size // 65536 + 1))[:size]


def encrypt(data: bytes, recipients: list[object]) -> bytes:
    out = io.BytesIO()
    with encrypting_writer(out, recipients) as writer:
        for start in range(0, len(data), 100_000):  # writes that straddle age's chunks
            writer.write(data[start:start + 100_000])
    return out.getvalue()


def decrypt(ciphertext: bytes, identities: list[object]) -> bytes:
    with decrypting_reader(io.BytesIO(ciphertext), identities) as reader:
        return reader.read()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An age identity file and ssh-ed25519 / ssh-rsa key pairs, with their public keys."""
    directory = tmp_path_factory.mktemp("keys")
    identity = x25519.Identity.generate()
    (directory / "age.key").write_text(f"# created for the tests\n{identity}\n")
    (directory / "age.pub").write_text(f"{identity.to_public()}\n")
    if shutil.which("ssh-keygen"):
        for kind, extra in (("ed25519", []), ("rsa", ["-b", "2048"])):
            subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", "test",
                            "-f", str(directory / f"id_{kind}")], check=True)
    return {path.name: path for path in directory.iterdir()}


def ssh_key(keys: dict[str, Path], name: str) -> Path:
    if name not in keys:
        pytest.skip("ssh-keygen is not installed (package openssh-client)")
    return keys[name]


def test_round_trip_to_several_recipients_each_of_whom_can_decrypt(keys: dict[str, Path]) -> None:
    ed25519 = ssh_key(keys, "id_ed25519.pub")
    recipients = parse_recipients(f"{keys['age.pub'].read_text().strip()},\n"
                                  f"# the operator's ssh key\n{ed25519.read_text()}")
    data = plaintext(3 * 65536 + 123)  # several age chunks and a partial last one
    ciphertext = encrypt(data, recipients)
    assert is_encrypted(ciphertext[:32]) and not is_encrypted(data[:32])
    assert decrypt(ciphertext, load_identities(keys["age.key"])) == data
    assert decrypt(ciphertext, load_identities(keys["id_ed25519"])) == data
    assert decrypt(encrypt(b"", recipients), load_identities(keys["age.key"])) == b""


@pytest.mark.parametrize("identity, public", [("age.key", "age.pub"),
                                              ("id_ed25519", "id_ed25519.pub"),
                                              ("id_rsa", "id_rsa.pub")])
def test_the_age_cli_decrypts_what_we_write_and_we_decrypt_what_it_writes(
        age_cli: str, keys: dict[str, Path], tmp_path: Path, identity: str, public: str) -> None:
    secret, pub = ssh_key(keys, identity), ssh_key(keys, public)
    data = plaintext(200_000)
    ours = tmp_path / "ours.age"
    ours.write_bytes(encrypt(data, parse_recipients(pub.read_text())))
    decrypted = subprocess.run([age_cli, "--decrypt", "-i", str(secret), str(ours)],
                               capture_output=True, check=True)
    assert decrypted.stdout == data
    theirs = tmp_path / "theirs.age"
    flag = "-r" if public == "age.pub" else "-R"
    recipient = pub.read_text().strip() if flag == "-r" else str(pub)
    subprocess.run([age_cli, flag, recipient, "-o", str(theirs)], input=data, check=True)
    assert decrypt(theirs.read_bytes(), load_identities(secret)) == data


def test_without_an_identity_decryption_is_refused_naming_the_variable(
        keys: dict[str, Path]) -> None:
    ciphertext = encrypt(b"secret rows", parse_recipients(keys["age.pub"].read_text()))
    with pytest.raises(OpsError) as exc:
        decrypting_reader(io.BytesIO(ciphertext), [])
    assert "no identity" in exc.value.message
    assert IDENTITY_VARIABLE in (exc.value.hint or "")


def test_the_wrong_identity_is_refused_before_any_plaintext(keys: dict[str, Path]) -> None:
    ciphertext = encrypt(plaintext(300_000), parse_recipients(keys["age.pub"].read_text()))
    with pytest.raises(OpsError) as exc:
        decrypting_reader(io.BytesIO(ciphertext), [x25519.Identity.generate()])
    assert "encrypted to other keys" in exc.value.message
    assert IDENTITY_VARIABLE in (exc.value.hint or "")


@pytest.mark.parametrize("damage", ["header", "middle", "last byte", "truncated mid-chunk",
                                    "truncated at a chunk boundary", "final chunk dropped"])
def test_tampered_or_truncated_ciphertext_is_refused(keys: dict[str, Path], damage: str) -> None:
    data = plaintext(5 * 65536 + 1000)
    ciphertext = bytearray(encrypt(data, parse_recipients(keys["age.pub"].read_text())))
    header = ciphertext.index(b"\n---") + 48  # the header ends with "--- " + MAC + "\n"
    chunk = 65536 + 16  # ciphertext chunk: plaintext plus its tag
    body = header + 16  # after the payload nonce
    if damage == "header":
        ciphertext[40] ^= 1
    elif damage == "middle":
        ciphertext[body + 2 * chunk + 100] ^= 1
    elif damage == "last byte":
        ciphertext[-1] ^= 1
    elif damage == "truncated mid-chunk":
        del ciphertext[body + 3 * chunk + 500:]
    elif damage == "truncated at a chunk boundary":
        del ciphertext[body + 3 * chunk:]
    else:
        del ciphertext[body + 5 * chunk:]
    identities = load_identities(keys["age.key"])
    received = bytearray()
    with pytest.raises(OpsError) as exc:
        reader = decrypting_reader(io.BytesIO(bytes(ciphertext)), identities)
        while block := reader.read(10_000):
            received += block
    assert "\n" not in exc.value.message
    assert data.startswith(received) and len(received) < len(data)
    if damage != "header":
        assert "damaged or truncated" in exc.value.message
        with pytest.raises(OpsError):  # the failure stays: never mistaken for the end
            reader.read(1)


def test_a_file_that_is_not_age_is_refused(keys: dict[str, Path]) -> None:
    for content in (b"", b'{"meta": "plain backup"}\n' * 100):
        with pytest.raises(OpsError) as exc:
            decrypting_reader(io.BytesIO(content), load_identities(keys["age.key"]))
        assert "not an age-encrypted file" in exc.value.message


def test_an_aborted_encryption_never_finishes_the_stream(keys: dict[str, Path]) -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), \
            encrypting_writer(out, parse_recipients(keys["age.pub"].read_text())) as writer:
        writer.write(plaintext(200_000))
        raise RuntimeError("the backup failed")
    with pytest.raises(OpsError):
        decrypt(out.getvalue(), load_identities(keys["age.key"]))


def test_a_failing_destination_surfaces_its_own_error(keys: dict[str, Path]) -> None:
    class Gone:
        def write(self, data: bytes) -> int:
            raise OpsError("S3: uploading s3://b/x failed: cannot reach the server")

    with pytest.raises(OpsError) as exc, \
            encrypting_writer(Gone(), parse_recipients(keys["age.pub"].read_text())) as writer:
        writer.write(plaintext(1 << 20))
    assert exc.value.message == "S3: uploading s3://b/x failed: cannot reach the server"


def test_a_failing_source_surfaces_its_own_error(keys: dict[str, Path]) -> None:
    ciphertext = encrypt(plaintext(1 << 20), parse_recipients(keys["age.pub"].read_text()))

    class CutOff(io.RawIOBase):
        def __init__(self) -> None:
            self.source = io.BytesIO(ciphertext)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.source.tell() > 300_000:
                raise OpsError("S3: reading s3://b/x failed: cannot reach the server")
            return self.source.readinto(buffer)

    with pytest.raises(OpsError) as exc, \
            decrypting_reader(CutOff(), load_identities(keys["age.key"])) as reader:
        while reader.read(65536):
            pass
    assert exc.value.message == "S3: reading s3://b/x failed: cannot reach the server"


def test_bad_recipients_and_identity_files_are_one_line_without_key_material(
        tmp_path: Path) -> None:
    for text in ("age1notakey", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "", "# only a comment"):
        with pytest.raises(OpsError) as exc:
            parse_recipients(text)
        assert RECIPIENTS_VARIABLE in exc.value.message + (exc.value.hint or "")
    with pytest.raises(OpsError) as exc:
        load_identities(tmp_path / "missing.key")
    assert IDENTITY_VARIABLE in (exc.value.hint or "")
    leaked = tmp_path / "bad.key"
    leaked.write_text("AGE-SECRET-KEY-1NOTREALLYAKEYBUTSECRETLOOKING\n")
    with pytest.raises(OpsError) as exc:
        load_identities(leaked)
    assert "line 1" in exc.value.message and "SECRETLOOKING" not in exc.value.message


def test_passphrase_protected_ssh_keys_are_refused(tmp_path: Path) -> None:
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed (package openssh-client)")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f",
                    str(tmp_path / "locked")], check=True)
    with pytest.raises(OpsError) as exc:
        load_identities(tmp_path / "locked")
    assert "passphrase" in exc.value.message


def test_a_compressed_encrypted_backup_round_trips_through_every_store(
        backend: Backend, keys: dict[str, Path]) -> None:
    store = open_store(backend.location)
    lines = [f'{{"id": {i}, "email": "user{i}@example.test"}}\n'.encode() for i in range(50_000)]
    with store.open_writer("backup-x.json.gz.age") as raw:
        with encrypting_writer(raw, parse_recipients(keys["age.pub"].read_text())) as sealed, \
                gzip.GzipFile(fileobj=sealed, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
            gz.writelines(lines)
        raw.commit()
    with store.open_reader("backup-x.json.gz.age") as raw:
        assert is_encrypted(raw.read(22))
    with store.open_reader("backup-x.json.gz.age") as raw, \
            decrypting_reader(raw, load_identities(keys["age.key"])) as plain, \
            gzip.GzipFile(fileobj=plain, mode="rb") as gz:
        assert list(gz) == lines


STREAM_BOTH_WAYS = textwrap.dedent("""
    import hashlib, sys, time
    from pyrage import x25519
    from ops.backup.encryption import decrypting_reader, encrypting_writer

    size = int(sys.argv[1])
    identity = x25519.Identity.generate()
    block = bytes(range(256)) * 4096

    class Spool:  # ciphertext on disk, so only the streams' own memory counts
        def __init__(self):
            self.file = open(sys.argv[2], "w+b")
        def write(self, data):
            return self.file.write(data)

    spool = Spool()
    start = time.perf_counter()
    digest = hashlib.sha256()
    with encrypting_writer(spool, [identity.to_public()]) as writer:
        for _ in range(size // len(block)):
            writer.write(block)
            digest.update(block)
    encrypted = time.perf_counter()
    spool.file.seek(0)
    check = hashlib.sha256()
    with decrypting_reader(spool.file, [identity]) as reader:
        while chunk := reader.read(1 << 20):
            check.update(chunk)
    done = time.perf_counter()
    assert check.digest() == digest.digest()
    # VmHWM, not ru_maxrss: the latter inherits the parent's size across fork and exec
    status = open("/proc/self/status").read()
    rss = int(status.split("VmHWM:")[1].split()[0]) // 1024
    print(f"{rss} {size / (encrypted - start) / 1e6:.0f} {size / (done - encrypted) / 1e6:.0f}")
""")


def test_memory_stays_bounded_on_a_large_stream(tmp_path: Path) -> None:
    def run(size: int) -> tuple[int, ...]:
        out = subprocess.run([sys.executable, "-c", STREAM_BOTH_WAYS, str(size),
                              str(tmp_path / "spool.age")], capture_output=True, text=True,
                             env=child_env(), check=True).stdout
        return tuple(int(x) for x in out.split())

    small_rss, *_ = run(16 << 20)
    large_rss, encrypt_mb_s, decrypt_mb_s = run(200 << 20)
    assert large_rss - small_rss < 20, (small_rss, large_rss)  # MiB: independent of size
    print(f"200 MB: peak RSS {large_rss} MiB, encrypt {encrypt_mb_s} MB/s, "
          f"decrypt {decrypt_mb_s} MB/s")


@pytest.mark.security
def test_an_identity_file_other_users_may_read_is_warned_about_every_time(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    identity = x25519.Identity.generate()
    path = tmp_path / "age.key"
    path.write_text(f"{identity}\n")
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        assert [str(i) for i in load_identities(path)] == [str(identity)]  # still usable
        warned = capsys.readouterr().err
        assert f"The identity file {path} is accessible to other users (mode {mode:04o})" \
            in warned and f"chmod 600 {path}" in warned
        assert str(identity) not in warned
    path.chmod(0o600)
    load_identities(path)
    assert capsys.readouterr().err == ""
