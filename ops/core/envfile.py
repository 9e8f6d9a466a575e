"""Secrets this installation generates for itself, kept in the settings file (`.env`).

A value published in the repository (a development password, a development salt) protects
nothing: anyone can use it. What must be secret per installation is generated on first need
and written to `.env`, which is then made readable by its owner only (it holds the other
secrets too). The file is rewritten whole through a private temp file and a rename, so a crash
never leaves it half written.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path

from dotenv import dotenv_values

PRIVATE_FILE = 0o600


def generate_secret() -> str:
    """43 URL-safe characters (256 bits): safe in a URL's password and in a dotenv line."""
    return secrets.token_urlsafe(32)


def env_value(path: Path, key: str) -> str | None:
    """`key`'s value in the dotenv file `path` (None when the file or the key is missing or
    the value empty)."""
    if not path.is_file():
        return None
    return (dotenv_values(path).get(key) or "").strip() or None


def set_env_value(path: Path, key: str, value: str, *, comment: str = "") -> None:
    """Set `key=value` in the dotenv file `path` (replacing an existing line, else appending,
    with `comment` above it), created if missing; the file ends up mode 0600."""
    text = path.read_text() if path.is_file() else ""
    line = f"{key}={value}"
    pattern = re.compile(rf"^[ \t]*(export[ \t]+)?{re.escape(key)}[ \t]*=.*$", re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: line, text, count=1)
    else:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"# {part}\n" for part in comment.splitlines()) + line + "\n"
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp: 0600 from the start
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    path.chmod(PRIVATE_FILE)
