"""The HTTP plumbing the fake REST venues share: JSON GET endpoints on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

DROP = -1  # a status `handle` returns to close the connection without a reply (a dropped link)


class LocalJsonVenue:
    """Subclasses implement `handle(path, query) -> (status, body)`; use as a context manager."""

    def __init__(self) -> None:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                status, body = venue.handle(url.path, query)
                if status == DROP:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


RestHandle = Callable[[str, str, str, str | None], tuple[int, Any]]
"""`handle(method, path, raw, api_key) -> (status, body)`: `raw` is the query string (GET/DELETE) or the
form body (POST), `api_key` the API-key header or None; status `DROP` closes without a reply."""


def rest_json_server(handle: RestHandle, api_key_header: str) -> ThreadingHTTPServer:
    """An HTTP/1.1 keep-alive server on 127.0.0.1 (ephemeral port) for signed GET/POST/DELETE endpoints
    answering JSON (not started: run `serve_forever` in a thread)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            raw = body if method == "POST" else url.query
            status, payload = handle(method, url.path, raw, self.headers.get(api_key_header))
            if status == DROP:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server
