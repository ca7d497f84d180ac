"""A minimal MJPEG client over a raw socket, to see the exact bytes and pace reading."""

from __future__ import annotations

import re
import socket
import threading
import time


class MjpegClient:
    def __init__(
        self, port: int, path: str = "/stream", timeout: float = 10, source: str | None = None
    ) -> None:
        # ``source``: another loopback address (127.0.0.2) is another client to the server.
        bind = (source, 0) if source else None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout, bind)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status_line, *lines = head.decode("latin-1").split("\r\n")
        self.headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.body = b""

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._recv_raw()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _recv_raw(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the stream")
        self.buf += data

    def _fill_body(self, need: int) -> None:
        """De-chunk until ``need`` bytes of body are buffered."""
        while len(self.body) < need:
            if not self.chunked:
                self._recv_raw()
                self.body += self.buf
                self.buf = b""
                continue
            size_line = self._until(b"\r\n")
            size = int(size_line, 16)
            while len(self.buf) < size + 2:
                self._recv_raw()
            self.body += self.buf[:size]
            self.buf = self.buf[size + 2 :]

    def read_raw(self, n: int) -> bytes:
        self._fill_body(n)
        out, self.body = self.body[:n], self.body[n:]
        return out

    def next_part(self) -> tuple[dict[str, str], bytes]:
        """Headers and JPEG of the next part (the opening boundary is consumed first)."""
        while b"\r\n\r\n" not in self.body:
            self._fill_body(len(self.body) + 1)
        head, rest = self.body.split(b"\r\n\r\n", 1)
        lines = [ln for ln in head.decode("latin-1").split("\r\n") if ":" in ln]
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
        length = int(headers["content-length"])
        self.body = rest
        self._fill_body(length)
        jpeg, self.body = self.body[:length], self.body[length:]
        return headers, jpeg

    def frames_for(self, seconds: float) -> int:
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            self.next_part()
            n += 1
        return n

    def close(self) -> None:
        self.sock.close()


class Drain:
    """Reads an MJPEG response as fast as it comes, in a thread, and notes when the server
    ends it (the final chunk, or the connection closed)."""

    END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked response

    def __init__(self, client: MjpegClient) -> None:
        self.client = client
        self.ended = threading.Event()
        self.bytes = 0
        self.tail = b""  # the last bytes received
        self.error = ""
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        tail = self.client.buf[-64:]
        self.client.sock.settimeout(30)
        try:
            while chunk := self.client.sock.recv(1 << 16):
                self.bytes += len(chunk)
                tail = (tail + chunk)[-64:]
                if tail.endswith(self.END):
                    break
        except OSError as e:
            self.error = repr(e)
        self.tail = tail
        self.ended.set()

    @property
    def finished(self) -> bool:
        """The server ended the response itself, right after a whole part and its
        boundary: not a connection cut mid-frame."""
        return self.tail.endswith(b"--titanium-frame\r\n" + self.END)


def boundary_of(content_type: str) -> str:
    m = re.search(r"boundary=([^;]+)", content_type)
    assert m, content_type
    return m.group(1)
