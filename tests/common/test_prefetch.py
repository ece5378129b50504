"""common/prefetch.py: the datasets' background prefetch thread."""

import itertools

import pytest

from common import prefetch


def make_counter(capacity, fail_at=None):
    counter = itertools.count()

    def make_item():
        item = next(counter)
        if item == fail_at:
            raise RuntimeError(f"broken item {item}")
        return item

    thread = prefetch.PrefetchThread(capacity)
    thread.start_prefetch(make_item)
    return thread


def test_items_arrive_in_order_and_peek_does_not_consume():
    thread = make_counter(2)
    assert thread.peek() == 0
    assert [next(thread) for _ in range(5)] == [0, 1, 2, 3, 4]
    thread.close()
    assert not thread.is_alive()


def test_an_error_in_the_thread_reaches_the_consumer_and_stays():
    thread = make_counter(1, fail_at=2)
    assert [next(thread), next(thread)] == [0, 1]
    for _ in range(2):
        with pytest.raises(RuntimeError, match="broken item 2"):
            next(thread)
    thread.close()


def test_the_first_item_is_made_in_the_callers_thread():
    with pytest.raises(RuntimeError, match="broken item 0"):
        make_counter(1, fail_at=0)
    with pytest.raises(ValueError, match="prefetch_batches"):
        prefetch.PrefetchThread(0)
