"""Client-side probes of serving replicas: which one runs the engine, and how long a takeover takes.

Used by the replica tests, `make cluster` and `bench.cluster` (``takeover_s``)::

    engine_states(["http://127.0.0.1:8001", "http://127.0.0.1:8002"])  # {url: "active" | "standby" | ... | None}
    measure_takeover(urls, kill=lambda url: os.kill(pids[url], signal.SIGKILL))  # (killed, new, seconds)
    time_takeover(urls, kill=...)  # Takeover(killed, new, acquired_s, active_s): the lease's hand-over too

Each probe is ``GET /health`` (field ``engine``); an unreachable replica is ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import httpx


def engine_state(url: str, client: httpx.Client) -> str | None:
    """The replica's `engine` field of /health, None when it does not answer."""
    try:
        response = client.get(f"{url.rstrip('/')}/health")
        response.raise_for_status()
        return str(response.json().get("engine"))
    except (httpx.HTTPError, ValueError):
        return None


def engine_states(urls: Sequence[str], timeout_s: float = 2.0) -> dict[str, str | None]:
    with httpx.Client(timeout=timeout_s) as client:
        return {url: engine_state(url, client) for url in urls}


def wait_for_active(
    urls: Sequence[str], timeout_s: float = 60.0, poll_s: float = 0.05, exclude: str | None = None
) -> str:
    """The url of the replica that reports ``active`` (not `exclude`); TimeoutError after `timeout_s`."""
    return _wait_for(urls, ("active",), timeout_s, poll_s, exclude)


def _wait_for(
    urls: Sequence[str], states: tuple[str, ...], timeout_s: float, poll_s: float, exclude: str | None
) -> str:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=min(2.0, timeout_s)) as client:
        while True:
            for url in urls:
                if url != exclude and engine_state(url, client) in states:
                    return url
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica of {list(urls)} became {'/'.join(states)} within {timeout_s} s")
            time.sleep(poll_s)


class Takeover(NamedTuple):
    killed: str  # the url that was active and was killed
    new: str  # the url that is active now
    acquired_s: float  # kill -> another replica holds the lease (reports starting or active)
    active_s: float  # kill -> it reports active: recovery, clean start and reconciliation done


def time_takeover(
    urls: Sequence[str], kill: Callable[[str], None], timeout_s: float = 60.0, poll_s: float = 0.05
) -> Takeover:
    """Kill the active replica (`kill(url)`, e.g. a SIGKILL); time the lease's hand-over and the new
    leader's first ``active`` (after its recovery from the shared trading store)."""
    old = wait_for_active(urls, timeout_s, poll_s)
    start = time.monotonic()
    kill(old)
    new = _wait_for(urls, ("starting", "active"), timeout_s, poll_s, exclude=old)
    acquired = time.monotonic() - start
    wait_for_active([new], timeout_s, poll_s)
    return Takeover(old, new, acquired, time.monotonic() - start)


def measure_takeover(
    urls: Sequence[str], kill: Callable[[str], None], timeout_s: float = 60.0, poll_s: float = 0.05
) -> tuple[str, str, float]:
    """(killed url, new active url, seconds from the kill to the new leader's first ``active``)."""
    taken = time_takeover(urls, kill, timeout_s, poll_s)
    return taken.killed, taken.new, taken.active_s
