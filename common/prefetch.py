# Copyright 2021, 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified by the nerf-ports authors.
"""The background prefetch of google/mipnerf's and multinerf's datasets: a thread that keeps the
next batches ready in a bounded queue, hands a loader error to the consumer, and can be stopped."""

import queue
import threading


class PrefetchThread(threading.Thread):
    """Keeps up to `capacity` items of `make_item()` ready; iterate it (or peek) for the items.

    A subclass sets itself up, then calls start_prefetch(make_item): the first item is made in the
    caller's thread, so a bad dataset fails there, and the thread makes the rest.
    """

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError(f'Config.prefetch_batches must be >= 1, got {capacity}')
        # Not a daemon: a daemon thread killed inside a torch op at exit aborts the process. The
        # thread ends by itself once the main thread has finished, or on close().
        super().__init__()
        self._stop_event = threading.Event()
        self._queue = queue.Queue(capacity)
        self._make_item = None

    def start_prefetch(self, make_item):
        """Makes the first item now, then starts the thread that makes the next ones."""
        self._make_item = make_item
        self._queue.put(make_item())
        self.start()

    def __iter__(self):
        return self

    def __next__(self):
        """The next item, in the order they were made."""
        item = self._queue.get()
        if isinstance(item, Exception):
            # Leave the error for later calls too: the thread that raised it has ended.
            self._queue.put(item)
            raise item
        return item

    def peek(self):
        """The item next(self) would return, without taking it off the queue."""
        with self._queue.not_empty:
            while not self._queue.queue:
                self._queue.not_empty.wait()
            item = self._queue.queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    def run(self):
        try:
            while not self._should_stop():
                self._put(self._make_item())
        except Exception as error:
            # Hand the error to the consumer, which would otherwise wait for an item forever.
            self._put(error)

    def _should_stop(self):
        return self._stop_event.is_set() or not threading.main_thread().is_alive()

    def _put(self, item):
        """Queues item once there is room, unless the thread should stop meanwhile."""
        while not self._should_stop():
            try:
                # Wake up now and then to notice close() or the end of the main thread.
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def close(self):
        """Stops the prefetch thread (data already loaded stays available)."""
        self._stop_event.set()
        if self.is_alive():
            self.join()
