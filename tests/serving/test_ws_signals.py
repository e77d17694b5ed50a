"""/ws/signals over a real socket: every message reaches a reading client; a client that never reads is
dropped (close code 1008) instead of being waited for."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from websockets.sync.client import connect

from pipelines.config import Settings
from serving.app import create_app
from serving.messages import StatusMessage
from tests.serving.helpers import serve_in_thread

pytestmark = pytest.mark.integration


def _connect_and_never_read(base_url: str) -> socket.socket:
    """A raw WebSocket client: handshake, then it never reads another byte (a stuck consumer)."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/signals HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_reader_gets_everything_and_a_client_that_never_reads_is_dropped(serving_home: Settings) -> None:
    settings = serving_home.model_copy(
        update={
            "engine": serving_home.engine.model_copy(update={"enabled": False}),
            "serving": serving_home.serving.model_copy(update={"ws_queue_size": 32, "ws_send_timeout_s": 0.5}),
        }
    )
    app = create_app(settings)
    hub = app.state.hub
    total = 1500
    padding = "x" * 8192  # 12 MB in all: more than the kernel buffers a never-reading client can absorb
    received: list[str] = []

    with serve_in_thread(app) as base_url:
        url = base_url.replace("http", "ws") + "/ws/signals"
        slow = _connect_and_never_read(base_url)
        fast = connect(url, max_size=None)
        assert fast.recv(timeout=5).startswith('{"type":"hello"')

        def read() -> None:
            while len(received) < total:
                received.append(str(fast.recv(timeout=10)))

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 10
        while hub.clients < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        for i in range(total):
            hub.publish_threadsafe(
                StatusMessage(source="test", connected=True, detail=f"{i} {padding}", at=datetime.now(UTC))
            )
            if i % 8 == 7:
                time.sleep(0.004)  # a realistic burst rate, not one 12 MB gulp
        publish_s = time.monotonic() - started
        reader.join(timeout=30)
        dropped_within = time.monotonic() - started
        # Now drain the stuck socket: it ends (the server closed it) instead of streaming on forever.
        # The server's WebSocket library bounds its closing handshake by 4 x close_timeout (10 s): under
        # load the TCP close can come that late, so wait that long, not less.
        slow.settimeout(45)
        drained = 0
        while chunk := slow.recv(65536):
            drained += len(chunk)
        fast.close()
        slow.close()

    assert len(received) == total, "the reading client got every message"
    assert [int(m.split('"detail":"')[1].split(" ")[0]) for m in received] == list(range(total)), "in order"
    assert hub.dropped == 1, "the stuck client was dropped"
    assert drained < total * len(padding), "it was cut off, not sent everything"
    assert dropped_within < 30
    assert publish_s < 5.0, "publishing never waited for the slow client"
