"""Raw HTTP/1.1 over a socket, for requests httpx will not make: a Content-Length with no body
behind it, a chunked body past a limit."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable


def raw_request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
                body: Iterable[bytes] = (), chunked: bool = False,
                timeout: float = 10) -> tuple[int, dict[str, str], dict]:
    """Send the request (each body part as a chunk when `chunked`) and read one response:
    (status, lower-cased headers, JSON body). A server that waits for a body it was promised
    but never sent makes this time out."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for part in body:
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        # Keep-alive (no Connection: close): the server discards a refused body instead of
        # resetting the connection, so its answer stays readable; read exactly that answer.
        response = b""
        while b"\r\n\r\n" not in response:
            response += _recv(sock)
        head, _, payload = response.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found = {k.strip().lower(): v.strip()
                 for k, _, v in (line.partition(":") for line in header_lines)}
        while len(payload) < int(found.get("content-length", 0)):
            payload += _recv(sock)
    return int(status_line.split()[1]), found, json.loads(payload) if payload else {}


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection before answering")
    return chunk
