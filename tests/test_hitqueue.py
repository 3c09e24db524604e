"""HitQueue: FIFO order, the hit cap, the exact byte cap and entries in flight."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_matomo.hitqueue import HitQueue


def entry(number: int, size: int = 10) -> bytes:
    """Return an encoded hit of exactly `size` bytes that carries `number`."""
    text = f'{{"n":{number}}}'.encode()
    assert len(text) <= size
    return text[:-1] + b" " * (size - len(text)) + b"}"


def number_of(item: bytes) -> int:
    return int(item.split(b":")[1].rstrip(b" }"))


def test_take_returns_entries_in_arrival_order() -> None:
    queue = HitQueue(10, 10**6)
    for number in range(5):
        assert queue.offer(entry(number))
    assert queue.take(3, 10**6) == [entry(0), entry(1), entry(2)]
    assert queue.take(10, 10**6) == [entry(3), entry(4)]
    assert queue.take(1, 10**6) == []


def test_offer_rejects_at_hit_cap() -> None:
    queue = HitQueue(3, 10**6)
    assert [queue.offer(entry(number)) for number in range(5)] == [True, True, True, False, False]
    assert list(queue) == [entry(0), entry(1), entry(2)]


def test_byte_cap_is_exact() -> None:
    queue = HitQueue(100, 1000)
    assert [queue.offer(entry(number, 300)) for number in range(4)] == [True, True, True, False]
    assert queue.total_bytes == 900
    assert queue.offer(entry(9, 100))
    assert queue.total_bytes == 1000
    assert not queue.offer(b"1")


def test_entry_larger_than_cap_never_fits() -> None:
    queue = HitQueue(100, 1000)
    assert not queue.offer(entry(0, 1001))
    assert len(queue) == 0
    assert queue.total_bytes == 0
    assert queue.offer(entry(1, 1000))


def test_entries_in_flight_count_against_caps() -> None:
    queue = HitQueue(4, 1000)
    for number in range(4):
        queue.offer(entry(number, 200))
    taken = queue.take(3, 10**6)
    assert queue.reserved == 3
    assert queue.reserved_bytes == 600
    assert queue.queued_bytes == 200
    assert queue.total_bytes == 800
    assert not queue.offer(entry(9, 10))  # 1 queued + 3 in flight = 4 hits

    queue.release(taken)
    assert queue.reserved == 0
    assert queue.reserved_bytes == 0
    assert queue.offer(entry(10, 800))


def test_take_stops_at_byte_budget() -> None:
    queue = HitQueue(100, 10**6)
    for number in range(5):
        queue.offer(entry(number, 100))
    # Each entry costs its size plus one comma: 3 entries need 303 bytes.
    assert queue.take(100, 303) == [entry(0, 100), entry(1, 100), entry(2, 100)]
    assert queue.take(100, 201) == [entry(3, 100)]
    assert queue.queued_bytes == 100
    assert queue.take(100, 1) == [entry(4, 100)]


def test_take_gives_large_first_entry_alone() -> None:
    queue = HitQueue(100, 10**6)
    queue.offer(entry(0, 5000))
    queue.offer(entry(1, 10))
    assert queue.take(100, 1000) == [entry(0, 5000)]
    assert queue.take(100, 1000) == [entry(1, 10)]


def test_put_back_returns_entries_to_head() -> None:
    queue = HitQueue(10, 10**6)
    for number in range(4):
        queue.offer(entry(number))
    taken = queue.take(2, 10**6)
    queue.offer(entry(4))
    queue.put_back(taken)
    assert queue.reserved == 0
    assert queue.reserved_bytes == 0
    assert queue.queued_bytes == 50
    assert queue.take(10, 10**6) == [entry(0), entry(1), entry(2), entry(3), entry(4)]


def test_reset_empties_queue_and_flight() -> None:
    queue = HitQueue(5, 10**6)
    for number in range(5):
        queue.offer(entry(number))
    queue.take(2, 10**6)
    queue.reset()
    assert len(queue) == 0
    assert queue.reserved == 0
    assert queue.total_bytes == 0
    assert queue.offer(entry(9))


@pytest.mark.parametrize(
    ("max_hits", "max_bytes", "message"),
    [
        (0, 100, "max_hits must be >= 1, got 0"),
        (10, 0, "max_bytes must be >= 1, got 0"),
    ],
)
def test_invalid_caps_rejected(max_hits: int, max_bytes: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        HitQueue(max_hits, max_bytes)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(10, 900)),
        st.tuples(st.just("take"), st.integers(1, 7)),
        st.tuples(st.just("take_bytes"), st.integers(1, 2000)),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("put_back"), st.just(0)),
    ),
    max_size=60,
)


@given(operations)
def test_caps_and_order_hold_for_any_sequence(ops: list[tuple[str, int]]) -> None:
    queue = HitQueue(12, 4000)
    next_number = 0
    in_flight: list[list[bytes]] = []
    delivered: list[int] = []
    for operation, amount in ops:
        if operation == "offer":
            if queue.offer(entry(next_number, amount)):
                next_number += 1
        elif operation in ("take", "take_bytes"):
            max_hits, max_bytes = (amount, 10**6) if operation == "take" else (100, amount)
            batch = queue.take(max_hits, max_bytes)
            if len(batch) > 1:
                assert sum(len(item) + 1 for item in batch) <= max_bytes
            if batch:
                in_flight.append(batch)
        elif operation == "release" and in_flight:
            batch = in_flight.pop(0)
            delivered.extend(number_of(item) for item in batch)
            queue.release(batch)
        elif operation == "put_back" and in_flight:
            # Only the newest batch can go back without breaking the order.
            queue.put_back(in_flight.pop())

        flying = [item for batch in in_flight for item in batch]
        assert len(queue) + queue.reserved <= queue.max_hits
        assert queue.total_bytes <= queue.max_bytes
        assert queue.reserved == len(flying)
        assert queue.reserved_bytes == sum(map(len, flying))
        assert queue.queued_bytes == sum(map(len, queue))

    remaining = [item for batch in in_flight for item in batch] + list(queue)
    numbers = delivered + [number_of(item) for item in remaining]
    assert numbers == sorted(numbers)
    assert len(numbers) == len(set(numbers))
