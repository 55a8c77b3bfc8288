"""vtok.codec.batching.prefetch: items in order, errors carried over, and the thread ends however
the consumer stops."""

import threading
import time

import pytest

from vtok.codec.batching import prefetch


def _threads() -> int:
    return sum(t.name == "vtok-prefetch" for t in threading.enumerate())


def test_items_come_in_order():
    assert list(prefetch(range(100), depth=3)) == list(range(100))
    assert _threads() == 0


def test_a_producer_error_is_raised_in_the_consumer():
    def source():
        yield 1
        raise ValueError("bad frame")

    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for item in prefetch(source()):
            got.append(item)
    assert got == [1] and _threads() == 0


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_consumer_that_stops_stops_the_producer(error):
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield time.sleep(0.001)
        finally:
            closed.set()  # the source's `with` blocks end too

    ahead = prefetch(endless(), depth=2)
    with pytest.raises(error):
        for i, _ in enumerate(ahead):
            if i == 5:
                raise error
    ahead.close()  # what `closing(...)` does in encode and decode
    assert closed.wait(2) and _threads() == 0
