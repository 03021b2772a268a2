"""A fault-injecting HTTP proxy on loopback, for the S3 test server (stdlib only).

Sits between restoray's S3 clients (boto3, pyarrow) and the moto server and misbehaves the way
object stores and the networks in front of them do: on a seeded fraction of requests it resets
the connection (before or after the server acted on the request), answers 500, 503 or 503
``SlowDown`` without forwarding, or forwards and cuts the response body off half-way under a
full ``Content-Length``; every request also waits ``latency_s``. ``down=True`` refuses every
connection (an endpoint gone for good). Counts of what it did are in :attr:`FaultProxy.counts`.

Which request gets a fault depends on the order requests arrive in, so a run is not replayed
exactly; the fraction and the kinds are what the seed fixes.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

FAULTS = ("reset_before", "reset_after", "status_500", "status_503", "slow_down", "truncate")
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "expect"}
_ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected by the '
              'fault proxy</Message><RequestId>fault</RequestId></Error>')


class FaultProxy:
    """``with FaultProxy(upstream, fraction=0.15, seed=0) as proxy:`` then point clients at ``proxy.url``."""

    def __init__(self, upstream: str, fraction: float = 0.0, seed: int = 0, latency_s: float = 0.0,
                 faults: tuple[str, ...] = FAULTS):
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction {fraction}: must be in [0, 1]")
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.fraction, self.latency_s, self.faults = fraction, latency_s, tuple(faults)
        self.down = False
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def draw(self) -> str | None:
        """The fault for the next request (None: behave)."""
        with self._lock:
            self.counts["requests"] += 1
            if self._rng.random() >= self.fraction:
                return None
            fault = self._rng.choice(self.faults)
            self.counts[fault] += 1
            return fault


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close the client socket with RST (SO_LINGER 0), not a polite FIN."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.connection.close()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _handler(proxy: FaultProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for boto3's uploads

        def log_message(self, *args) -> None:  # quiet
            pass

        def _serve(self) -> None:
            if proxy.down:
                _reset(self)
                return
            body = _read_body(self)
            if proxy.latency_s:
                time.sleep(proxy.latency_s)
            fault = proxy.draw()
            if fault == "reset_before":
                _reset(self)
                return
            if fault in ("status_500", "status_503", "slow_down"):
                status, code = {"status_500": (500, "InternalError"), "status_503": (503, "ServiceUnavailable"),
                                "slow_down": (503, "SlowDown")}[fault]
                payload = _ERROR_XML.format(code=code).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Content-Length"] = str(len(body))
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
            finally:
                upstream.close()
            if fault == "reset_after":  # the server acted; the client never hears so
                _reset(self)
                return
            self.send_response_only(response.status, response.reason)
            for k, v in response.getheaders():
                if k.lower() not in _HOP and (k.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(k, v)  # a HEAD answer keeps the object's length
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if fault == "truncate" and len(data) > 1:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                _reset(self)
                return
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    return Handler
