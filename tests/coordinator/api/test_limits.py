"""Upload bodies are capped before multipart parsing stores them (issue 19): a body declared
too large is refused before a byte of it is read, a body that grows too large while it
streams is cut off at the cap, both with a 413 whose message states the limit."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

MIB = 1 << 20


class Spooled:
    """Counts the bytes Starlette's multipart parser writes to its temporary files."""

    written = 0


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Spooled]]:
    import starlette.formparsers as fp

    base = fp.SpooledTemporaryFile

    class Counting(base):  # type: ignore[misc, valid-type]
        def write(self, data: bytes) -> int:
            Spooled.written += len(data)
            return int(super().write(data))

    Spooled.written = 0
    monkeypatch.setattr(fp, "SpooledTemporaryFile", Counting)
    yield Spooled


def _head(length: int | None, boundary: str = "b0undary") -> bytes:
    lines = [
        "POST /api/contributions HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _part(boundary: str = "b0undary") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.safetensors"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()


def _response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    data = b""
    sock.settimeout(30)
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():  # one chunk is all a 413 needs
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return status, json.loads(body)


def _connect(server: str) -> socket.socket:
    url = urlsplit(server)
    return socket.create_connection((url.hostname, url.port), timeout=30)


def test_a_declared_400_mib_body_gets_413_before_anything_is_read(
    coordinator: Any, server: str, spooled: type[Spooled]
) -> None:
    cap = coordinator.submissions.upload_cap()
    with _connect(server) as sock:
        sock.sendall(_head(400 * MIB) + _part() + b"\0" * 65536)
        status, body = _response(sock)
    assert status == 413
    assert str(400 * MIB) in body["detail"] and "limit" in body["detail"]
    limit = int(body["detail"].split("over the ")[1].split("-byte")[0])
    assert cap < limit <= cap + 4 * MIB  # the file cap plus the form's allowance
    assert spooled.written == 0
    assert not any((coordinator.store.root / "incoming").iterdir())


def test_a_chunked_body_is_cut_off_at_the_cap(
    coordinator: Any, server: str, spooled: type[Spooled]
) -> None:
    from mergenet.coordinator.api.limits import FORM_ALLOWANCE

    limit = coordinator.submissions.upload_cap() + FORM_ALLOWANCE
    block = b"\0" * (256 << 10)
    sent = 0
    with _connect(server) as sock:
        sock.sendall(_head(None))
        chunks = [_part()] + [block] * ((limit + 8 * MIB) // len(block))
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        status, body = _response(sock)
    assert status == 413, body
    assert f"{limit}-byte limit" in body["detail"]
    assert 0 < spooled.written <= limit
    assert not any((coordinator.store.root / "incoming").iterdir())


def test_a_small_body_still_reaches_the_route(client: Any) -> None:
    r = client.post(
        "/api/contributions",
        data={"address": "0xnothex", "parent_hash": "0" * 64, "nonce": "1", "signature": "0x"},
        files={"file": ("d.safetensors", b"\0" * 1024)},
    )
    assert r.status_code == 422 and "address" in r.json()["detail"]
