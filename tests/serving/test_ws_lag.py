"""A /ws/signals client whose oldest unsent message is older than `realtime.ws_max_lag_s` is dropped
with close code 1008, even when its backlog limit and the per-send timeout are far away."""

from __future__ import annotations

import struct
import time
from datetime import UTC, datetime

import pytest

from pipelines.config import Settings
from serving.app import create_app
from serving.messages import StatusMessage
from tests.serving.helpers import serve_in_thread
from tests.serving.test_ws_signals import _connect_and_never_read

pytestmark = pytest.mark.integration


def _close_codes(stream: bytes) -> list[int]:
    """Close codes of the close frames in a server-to-client WebSocket byte stream (unmasked frames)."""
    codes, i = [], 0
    while i + 2 <= len(stream):
        opcode, length = stream[i] & 0x0F, stream[i + 1] & 0x7F
        i += 2
        if length == 126:
            length = struct.unpack(">H", stream[i : i + 2])[0]
            i += 2
        elif length == 127:
            length = struct.unpack(">Q", stream[i : i + 8])[0]
            i += 8
        if opcode == 0x8 and length >= 2:
            codes.append(struct.unpack(">H", stream[i : i + 2])[0])
        i += length
    return codes


def test_a_client_lagging_beyond_the_max_age_is_closed_with_1008(serving_home: Settings) -> None:
    settings = serving_home.model_copy(
        update={
            "engine": serving_home.engine.model_copy(update={"enabled": False}),
            "serving": serving_home.serving.model_copy(update={"ws_queue_size": 100_000, "ws_send_timeout_s": 60}),
            "realtime": serving_home.realtime.model_copy(update={"ws_max_lag_s": 0.5}),
        }
    )
    app = create_app(settings)
    hub = app.state.hub
    padding = "x" * 16384

    with serve_in_thread(app) as base_url:
        slow = _connect_and_never_read(base_url)
        deadline = time.monotonic() + 10
        while hub.clients < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        published = 0
        deadline = time.monotonic() + 30
        while hub.dropped == 0:  # more than the socket buffers hold, until the client falls behind
            assert time.monotonic() < deadline, "the lagging client was never dropped"
            hub.publish(StatusMessage(source="test", connected=True, detail=padding, at=datetime.now(UTC)))
            published += 1
            time.sleep(0.002)
        slow.settimeout(45)
        received = b""
        while chunk := slow.recv(1 << 20):
            received += chunk
        slow.close()

    assert hub.dropped == 1
    assert _close_codes(received) == [1008]
    assert len(received) < published * len(padding), "cut off, not sent everything"
