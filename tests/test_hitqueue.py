"""HitQueue: FIFO order, the hit cap, the estimated byte cap and hits in flight."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_matomo.hitqueue import INITIAL_HIT_BYTES, HitQueue
from asgi_matomo.types import Hit


def hit(number: int) -> Hit:
    return {"idsite": 1, "rec": 1, "url": f"https://app.example/{number}"}


def test_take_returns_hits_in_arrival_order() -> None:
    queue = HitQueue(10, 10**6)
    for number in range(5):
        assert queue.offer(hit(number))
    assert queue.take(3) == [hit(0), hit(1), hit(2)]
    assert queue.take(10) == [hit(3), hit(4)]
    assert queue.take(1) == []


def test_offer_rejects_at_hit_cap() -> None:
    queue = HitQueue(3, 10**6)
    assert [queue.offer(hit(number)) for number in range(5)] == [True, True, True, False, False]
    assert list(queue) == [hit(0), hit(1), hit(2)]


def test_byte_cap_uses_estimate() -> None:
    queue = HitQueue(100, 10_000, hit_bytes=1000)
    assert queue.limit == 10
    accepted = sum(queue.offer(hit(number)) for number in range(20))
    assert accepted == 10
    assert queue.capacity == 10
    assert queue.estimated_bytes == 10_000
    queue.take(4)
    assert queue.estimated_bytes == 10_000  # hits in flight still count


def test_default_estimate_until_measured() -> None:
    queue = HitQueue(100_000, 1_024_000)
    assert queue.hit_bytes == INITIAL_HIT_BYTES
    assert queue.limit == 1000


def test_record_encoded_moves_estimate() -> None:
    queue = HitQueue(10_000, 1_000_000, hit_bytes=1000)
    queue.record_encoded(hit_count=10, encoded_bytes=2000)  # 200 bytes per hit
    assert queue.hit_bytes == 800  # 0.75 * 1000 + 0.25 * 200
    assert queue.limit == 1250
    for _ in range(60):
        queue.record_encoded(hit_count=10, encoded_bytes=2000)
    assert queue.hit_bytes == pytest.approx(200, rel=1e-3)
    assert queue.limit in (4999, 5000)


def test_record_encoded_ignores_empty_batch() -> None:
    queue = HitQueue(10, 10**6, hit_bytes=500)
    queue.record_encoded(hit_count=0, encoded_bytes=100)
    assert queue.hit_bytes == 500


def test_hits_in_flight_count_against_cap() -> None:
    queue = HitQueue(4, 10**6)
    for number in range(4):
        queue.offer(hit(number))
    taken = queue.take(3)
    assert queue.reserved == 3
    assert queue.limit == 1
    assert not queue.offer(hit(9))  # 1 queued + 3 in flight = 4

    queue.release(len(taken))
    assert queue.reserved == 0
    assert queue.offer(hit(10))


def test_put_back_returns_hits_to_head() -> None:
    queue = HitQueue(10, 10**6)
    for number in range(4):
        queue.offer(hit(number))
    taken = queue.take(2)
    queue.offer(hit(4))
    queue.put_back(taken)
    assert queue.reserved == 0
    assert queue.take(10) == [hit(0), hit(1), hit(2), hit(3), hit(4)]


def test_hits_for_bytes_at_least_one() -> None:
    queue = HitQueue(10, 10**6, hit_bytes=400)
    assert queue.hits_for_bytes(1_000_000) == 2500
    assert queue.hits_for_bytes(100) == 1


def test_reset_empties_queue_and_flight() -> None:
    queue = HitQueue(5, 10**6)
    for number in range(5):
        queue.offer(hit(number))
    queue.take(2)
    queue.reset()
    assert len(queue) == 0
    assert queue.reserved == 0
    assert queue.limit == 5


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
        st.tuples(st.just("offer"), st.integers(1, 5)),
        st.tuples(st.just("take"), st.integers(1, 7)),
        st.tuples(st.just("release"), st.integers(1, 7)),
        st.tuples(st.just("put_back"), st.just(0)),
        st.tuples(st.just("measure"), st.integers(50, 3000)),
    ),
    max_size=60,
)


@given(operations)
def test_cap_and_order_hold_for_any_sequence(ops: list[tuple[str, int]]) -> None:
    queue = HitQueue(12, 8000, hit_bytes=400)
    next_number = 0
    in_flight: list[list[Hit]] = []
    delivered: list[int] = []
    for operation, amount in ops:
        if operation == "offer":
            for _ in range(amount):
                if queue.offer(hit(next_number)):
                    next_number += 1
        elif operation == "take":
            batch = queue.take(amount)
            if batch:
                in_flight.append(batch)
        elif operation == "release" and in_flight:
            batch = in_flight.pop(0)
            delivered.extend(int(str(item["url"]).rsplit("/", 1)[1]) for item in batch)
            queue.release(len(batch))
        elif operation == "put_back" and in_flight:
            # Only the newest batch can go back without breaking the order.
            queue.put_back(in_flight.pop())
        elif operation == "measure":
            queue.record_encoded(10, amount * 10)

        assert len(queue) + queue.reserved <= queue.max_hits
        assert queue.reserved == sum(len(batch) for batch in in_flight)
        assert queue.limit >= 0

    remaining = [item for batch in in_flight for item in batch] + list(queue)
    numbers = delivered + [int(str(item["url"]).rsplit("/", 1)[1]) for item in remaining]
    assert numbers == sorted(numbers)
    assert len(numbers) == len(set(numbers))
