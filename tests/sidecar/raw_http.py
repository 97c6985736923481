"""HTTP/1.1 over a bare socket: requests exactly as written (targets not normalized, headers of
any size) and answers exactly as received (status line, headers in order, body as sent)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawAnswer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def names(self) -> list[str]:
        return [key.lower() for key, _ in self.headers]


def _read_chunked(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += data[:size]
        data = data[size + 2 :]


def send(
    base_url: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    timeout: float = 60.0,
) -> RawAnswer:
    """One request on a fresh connection (closed after the answer)."""
    parts = urlsplit(base_url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        # Read to the end of the answer, not to the end of the connection: an engine may keep
        # the connection open after an error even when asked to close it.
        while not complete(data, method):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return parse(data, method)


def complete(data: bytes, method: str) -> bool:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    lowered = head.lower()
    if method == "HEAD" or b" 204 " in head.split(b"\r\n", 1)[0]:
        return True
    for line in lowered.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            return len(rest) >= int(value.strip())
        if name.strip() == b"transfer-encoding" and b"chunked" in value:
            return rest.endswith(b"0\r\n\r\n")
    return False


def parse(data: bytes, method: str = "GET") -> RawAnswer:
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = status_line.split(" ", 2)
    headers = [
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in header_lines)
    ]
    answer = RawAnswer(int(status), reason[0] if reason else "", headers, rest)
    if method != "HEAD" and (answer.header("Transfer-Encoding") or "").lower() == "chunked":
        return RawAnswer(answer.status, answer.reason, answer.headers, _read_chunked(rest))
    return answer
