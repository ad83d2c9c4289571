"""COMPRESS=DEFLATE (RFC 4978) end to end: imaplib over implicit TLS and STARTTLS against ``twistd mailsrv``.

imaplib has no COMPRESS, so :class:`Deflating` adds it the way RFC 4978 4
describes for zlib: raw DEFLATE (window bits -15) each way, the client
flushing after each command; what it reads is inflated before imaplib's
parser sees it.  Compression is above TLS: the TLS socket carries the
compressed stream.
"""

from __future__ import annotations

import base64
import imaplib
import os
import smtplib
import zlib
from collections.abc import Iterator

import pytest

from twistd_server import Server, one_user_server

PASSWORD = "correct horse battery staple"
USER = "alice@example.test"
# imaplib refuses commands its table does not list; RFC 4978 3: authenticated and selected states.
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


class Deflating:
    """Mixin for ``imaplib.IMAP4`` classes: :meth:`compress` turns DEFLATE on for the rest of the connection."""

    _deflate: "tuple[zlib._Compress, zlib._Decompress] | None" = None
    _inflated = b""

    def compress(self) -> str:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")  # type: ignore[attr-defined]
        if typ == "OK":
            self._deflate = (zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15))
        return typ

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            compressor = self._deflate[0]
            data = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)  # type: ignore[misc]

    def _fill(self) -> None:
        raw = self.file.read1(65536)  # type: ignore[attr-defined]
        if not raw:
            raise imaplib.IMAP4.abort("socket closed")
        self._inflated += self._deflate[1].decompress(raw)  # type: ignore[index]

    def readline(self) -> bytes:
        if self._deflate is None:
            return super().readline()  # type: ignore[misc]
        while b"\n" not in self._inflated:
            self._fill()
        line, _, self._inflated = self._inflated.partition(b"\n")
        return line + b"\n"

    def read(self, size: int) -> bytes:
        if self._deflate is None:
            return super().read(size)  # type: ignore[misc]
        while len(self._inflated) < size:
            self._fill()
        data, self._inflated = self._inflated[:size], self._inflated[size:]
        return data


class IMAP4SSL(Deflating, imaplib.IMAP4_SSL):
    pass


class IMAP4(Deflating, imaplib.IMAP4):
    pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from one_user_server(str(tmp_path_factory.mktemp("mailsrv")), USER, PASSWORD)


def implicit(server: Server) -> imaplib.IMAP4:
    return IMAP4SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)


def starttls(server: Server) -> imaplib.IMAP4:
    conn = IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    conn.starttls(server.tls())
    return conn


@pytest.mark.parametrize("connect", [implicit, starttls], ids=["imaps", "starttls"])
def test_compressed_session_fetches_and_appends(server: Server, connect) -> None:
    body = base64.encodebytes(os.urandom(600_000)).replace(b"\n", b"\r\n")  # several TLS records, some pieces
    message = b"From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: big\r\n\r\n" + body
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=server.tls())
        s.sendmail("bob@remote.test", [USER], message)
    conn = connect(server)
    try:
        conn.login(USER, PASSWORD)
        assert "COMPRESS=DEFLATE" in conn.capabilities
        assert conn.compress() == "OK"
        typ, data = conn.select("INBOX")
        assert typ == "OK"
        count = int(data[0])
        typ, data = conn.fetch(str(count), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1].endswith(message)  # below our trace headers
        appended = b"Subject: compressed append\r\n\r\n" + b"x" * 100_000 + b"\r\n"
        typ, _ = conn.append("INBOX", None, None, appended)
        assert typ == "OK"
        typ, data = conn.fetch(str(count + 1), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == appended
        typ, data = conn._simple_command("COMPRESS", "DEFLATE")
        assert typ == "NO" and data[0].startswith(b"[COMPRESSIONACTIVE]")
        typ, _ = conn.noop()
        assert typ == "OK"
    finally:
        conn.logout()
