"""The node's in-process event hub: one place that every live consumer reads from.

The node's events (the same dicts that go to the ``--events`` log) are published here; the
metrics collector and the Server-Sent Events streams subscribe.  So the page, ``/metrics`` and
the event log never disagree: they are fed by one stream.

A subscriber gets a bounded queue: a slow reader (a browser tab in the background) loses its
oldest messages rather than making the node hold an unbounded backlog; a live view only needs
the latest figures.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventHub", "Subscription"]

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


@dataclass(eq=False)
class Subscription:
    """One reader's queue on one topic (``node`` or ``campaign:<name>``)."""

    topic: str
    queue: asyncio.Queue[dict[str, Any]]
    dropped: int = 0
    _hub: EventHub | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop receiving (idempotent)."""
        if self._hub is not None:
            self._hub.unsubscribe(self)
            self._hub = None


class EventHub:
    """Topics of dict messages; synchronous listeners (metrics) and async queues (SSE)."""

    def __init__(self, *, queue_size: int = 64) -> None:
        self.queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = {}
        self._listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self.listener_errors = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the queues (events from other threads are handed to it)."""
        self._loop = loop
        self._thread = threading.get_ident()

    def in_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the hub's loop (now, if this is its thread): the node's event log and
        listeners are single-threaded, so a worker thread's event goes through here."""
        if self._loop is not None and threading.get_ident() != self._thread:
            try:
                self._loop.call_soon_threadsafe(fn)
            except RuntimeError:  # the loop is closed: the node is stopping
                pass
            return
        fn()

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """``listener(event)`` for every node event; returns the remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: dict[str, Any]) -> None:
        """A node event (an event-log line): to the listeners and the ``node`` topic, and to
        ``campaign:<name>`` when it names a campaign.  The node's ``NodeEvents`` observer."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # a malformed event must not break the node's event stream (the log, the
                # bus publisher): counted and logged, the other listeners still see it
                self.listener_errors += 1
                log.warning("console listener %r failed on a %r event: %s",
                            getattr(listener, "__qualname__", listener), event.get("type"), exc)
        self.publish("node", event)
        campaign = event.get("campaign")
        if isinstance(campaign, str):
            self.publish(f"campaign:{campaign}", event)

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for every subscriber of ``topic`` (from any thread)."""
        if self._loop is not None and threading.get_ident() != self._thread:
            try:
                self._loop.call_soon_threadsafe(self._deliver, topic, message)
            except RuntimeError:  # the loop is closed: the node is stopping
                pass
            return
        self._deliver(topic, message)

    def _deliver(self, topic: str, message: dict[str, Any]) -> None:
        for sub in list(self._subs.get(topic, ())):
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(message)

    def subscribe(self, topic: str) -> Subscription:
        """A new queue on ``topic``; close it when done."""
        sub = Subscription(topic, asyncio.Queue(self.queue_size), _hub=self)
        self._subs.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.topic]

    def subscribers(self, topic: str) -> int:
        """How many readers ``topic`` has."""
        return len(self._subs.get(topic, ()))

    def topics(self) -> list[str]:
        """Topics with at least one reader."""
        return list(self._subs)
