"""Client order ids (SPEC 11, `pipelines.trading.order_ids`): venue-safe format, strictly increasing
within a process, unique across processes and restarts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.trading.orders import ClientOrderIdFactory, client_order_id_time, client_order_id_uuid, is_our_order

T0 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)


class Clock:
    """A settable clock for the id factory (tests move it by hand)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_client_order_id_format_fits_venue_limits() -> None:
    ids = ClientOrderIdFactory(Clock(T0), prefix="at")

    cid = ids.next_id()

    assert re.fullmatch(r"at[0-9a-f]{32}", cid)
    assert len(cid) <= 36
    assert client_order_id_uuid(cid).version == 7
    assert client_order_id_time(cid) == T0
    assert is_our_order(cid, "at")
    assert not is_our_order("web_12345", "at")


def test_client_order_ids_increase_within_a_process_even_if_the_clock_steps_back() -> None:
    clock = Clock(T0)
    ids = ClientOrderIdFactory(clock)

    first = [ids.next_id() for _ in range(100)]
    clock.now = T0 - timedelta(seconds=5)
    after_step_back = [ids.next_id() for _ in range(100)]

    sequence = first + after_step_back
    assert sequence == sorted(sequence)
    assert len(set(sequence)) == len(sequence)


def test_client_order_ids_are_unique_across_two_processes_and_a_restart() -> None:
    # Arrange: two processes with the same wall clock, then process A restarts with its clock 2 s behind.
    same_instant = Clock(T0)
    process_a = ClientOrderIdFactory(same_instant)
    process_b = ClientOrderIdFactory(same_instant)

    # Act
    ids_a = {process_a.next_id() for _ in range(5000)}
    ids_b = {process_b.next_id() for _ in range(5000)}
    restarted_a = ClientOrderIdFactory(Clock(T0 - timedelta(seconds=2)))
    ids_a_after_restart = {restarted_a.next_id() for _ in range(5000)}

    # Assert
    assert len(ids_a) == len(ids_b) == len(ids_a_after_restart) == 5000
    assert ids_a.isdisjoint(ids_b)
    assert ids_a.isdisjoint(ids_a_after_restart)
    assert ids_b.isdisjoint(ids_a_after_restart)


def test_client_order_id_prefix_is_validated() -> None:
    with pytest.raises(ValueError, match="prefix"):
        ClientOrderIdFactory(Clock(T0), prefix="alphatide")
