"""A local fake of the Telegram Bot API's `sendMessage` (POST /bot<token>/sendMessage) on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class FakeTelegramBot:
    """Records messages sent with the right token; answers 401 otherwise, 429 `throttle` times first."""

    def __init__(self, token: str, *, throttle: int = 0, retry_after: int = 0) -> None:
        self.token, self.throttle, self.retry_after = token, throttle, retry_after
        self.messages: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.requests = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                status, answer = fake.handle(self.path, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
            if path != f"/bot{self.token}/sendMessage":
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            if "chat_id" not in body or not body.get("text"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
            if self.throttle > 0:
                self.throttle -= 1
                return 429, {"ok": False, "error_code": 429, "parameters": {"retry_after": self.retry_after}}
            self.messages.append(body)
            self.arrivals.append(time.monotonic())
            return 200, {"ok": True, "result": {"message_id": len(self.messages), "text": body["text"]}}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
