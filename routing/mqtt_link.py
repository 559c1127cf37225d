"""One resilient MQTT 5 connection: reconnect with backoff, persistent session, outbox.

Shared by the IVR side (:class:`routing.mqtt.MqttRoutingBus`) and the router
(:class:`routing.mqtt.MqttRouterService`).  What it guarantees:

* a persistent session (MQTT 5 section 3.1.2.4: Clean Start 0, Session Expiry
  Interval > 0), so the broker keeps our subscriptions and queues QoS 1 messages
  while we are away, including across a broker restart when the broker persists;
* every outgoing message goes through the :class:`Outbox` and leaves it only on
  PUBACK (section 4.3.2), so nothing is lost when the broker goes away mid-send;
* a retained "online" status, and the same topic with "offline" as Will Message
  (section 3.1.2.5), so a node that dies is seen offline;
* inbound messages go to a handler; a :class:`RoutingError` (a malformed message)
  is logged and the message dropped, and nothing a peer sends can stop the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dialtone_errors import ConfigError
from routing.errors import RoutingError
from routing.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

MessageHandler = Callable[[aiomqtt.Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Connection settings; ``mqtt://host:port`` URLs via :meth:`from_url`."""

    host: str
    port: int = 1883
    client_id: str = "dialtone"
    session_expiry_s: int = 3600
    """How long the broker keeps our session (subscriptions, queued messages) while away."""
    keepalive_s: int = 10
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    operation_timeout_s: float = 5.0
    """CONNECT, SUBSCRIBE and PUBLISH (until PUBACK) each time out after this."""
    batch: int = 64
    """Messages published concurrently from the outbox."""

    @classmethod
    def from_url(cls, url: str, *, client_id: str, **kwargs: Any) -> MqttSettings:
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ConfigError(f"not an mqtt://HOST:PORT URL: {url!r}")
        try:
            port = parts.port or 1883
        except ValueError as exc:
            raise ConfigError(f"bad port in {url!r}") from exc
        return cls(host=parts.hostname, port=port, client_id=client_id, **kwargs)


def backoff_delay(attempt: int, initial: float, maximum: float, rand: float) -> float:
    """Exponential backoff with jitter: between half and all of ``initial * 2**attempt``."""
    base: float = initial * float(2 ** min(attempt, 30))
    return min(maximum, base) * (0.5 + 0.5 * rand)


class MqttLink:
    """Keeps one client connected and drains its outbox; see the module docstring."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        outbox: Outbox,
        subscriptions: Sequence[str],
        status_topic: str,
        online_payload: Callable[[], bytes],
        offline_payload: bytes,
        handler: MessageHandler,
        clock: Callable[[], float] = time.time,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_connected = on_connected
        self.outbox = outbox
        self._subscriptions = list(subscriptions)
        self._status_topic = status_topic
        self._online_payload = online_payload
        self._offline_payload = offline_payload
        self._handler = handler
        self._clock = clock
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._closing = False
        self.connections = 0
        """Successful connections so far (1 + reconnects)."""
        self.dropped_malformed = 0

    # --- public ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.settings.client_id}")

    async def close(self, *, timeout: float = 2.0) -> None:
        """Say "offline" (a clean DISCONNECT does not fire the will), then disconnect."""
        self._closing = True
        client = self._client
        if client is not None and not self.connected.is_set():
            # Mid-connection: let it finish, or a clean DISCONNECT would leave us "online".
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout / 2):
                    await self.connected.wait()
            client = self._client
        if client is not None and self.connected.is_set():
            try:
                await client.publish(self._status_topic, self._offline_payload, qos=1,
                                     retain=True, timeout=timeout)
            except aiomqtt.MqttError as exc:
                log.info("%s: could not publish offline status: %s", self.settings.client_id, exc)
        task, self._task = self._task, None
        if task is not None:
            # Cancel more than once: a cancellation can be swallowed by a wait_for inside
            # aiomqtt (Python 3.11) when it races with the awaited result.
            for _ in range(3):
                task.cancel()
                done, _pending = await asyncio.wait({task}, timeout=timeout / 3)
                if done:
                    break
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.info("%s: link ended with %r", self.settings.client_id, task.exception())
        self.connected.clear()

    def enqueue(
        self,
        topic: str,
        payload: bytes,
        *,
        message_id: str,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expires_at: float | None = None,
    ) -> None:
        """Store a message in the outbox; it is published as soon as we are connected."""
        self.outbox.add(message_id=message_id, topic=topic, payload=payload, retain=retain,
                        response_topic=response_topic, correlation=correlation,
                        expires_at=expires_at)
        self._wake.set()

    def cancel(self, message_id: str) -> bool:
        """Drop an unacknowledged message from the outbox (True if it was still there)."""
        return self.outbox.cancel(message_id)

    # --- connection loop -------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._session()
                attempt = 0
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    attempt = 0
                log.info("%s: MQTT connection lost or refused: %s", self.settings.client_id, exc)
            finally:
                self.connected.clear()
                self._client = None
            if self._closing:
                return
            s = self.settings
            await asyncio.sleep(backoff_delay(attempt, s.backoff_initial_s, s.backoff_max_s,
                                              random.random()))
            attempt += 1

    async def _session(self) -> None:
        s = self.settings
        connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect_props.SessionExpiryInterval = s.session_expiry_s
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=connect_props,
            keepalive=s.keepalive_s,
            timeout=s.operation_timeout_s,
            will=aiomqtt.Will(self._status_topic, self._offline_payload, qos=1, retain=True),
            max_inflight_messages=max(20, s.batch),
            # Small request/response messages: Nagle plus delayed ACK would add ~40 ms each way.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = 2 * s.batch + 16  # batches are expected in flight
        async with client:
            self._client = client
            if self._subscriptions:
                await client.subscribe([(t, 1) for t in self._subscriptions])
            await client.publish(self._status_topic, self._online_payload(), qos=1, retain=True)
            self.connections += 1
            self.connected.set()
            if self._on_connected is not None:
                self._on_connected()
            flusher = asyncio.create_task(self._flush(client), name="mqtt-outbox")
            try:
                async for message in client.messages:
                    await self._dispatch(message)
            finally:
                # paho sends PUBACK as soon as a message is queued, so what is still queued
                # when the connection drops must be handled now or it is lost for good.
                queue = client._queue
                while not queue.empty():
                    await self._dispatch(queue.get_nowait())
                flusher.cancel()
                try:
                    await flusher
                except (asyncio.CancelledError, aiomqtt.MqttError):
                    pass

    async def _dispatch(self, message: aiomqtt.Message) -> None:
        try:
            await self._handler(message)
        except RoutingError as exc:
            self.dropped_malformed += 1
            log.warning("dropped message on %s: %s", message.topic.value, exc)
        except Exception:
            self.dropped_malformed += 1
            log.exception("handler failed on a message on %s; dropped", message.topic.value)

    async def _flush(self, client: aiomqtt.Client) -> None:
        """Publish outbox rows in order, a batch at a time; delete each on its PUBACK."""
        while True:
            self._wake.clear()
            rows = self.outbox.pending(now=self._clock(), limit=self.settings.batch)
            if not rows:
                await self._wake.wait()
                continue
            results = await asyncio.gather(
                *(self._publish(client, row) for row in rows), return_exceptions=True
            )
            self.outbox.delete([row.row_id for row, r in zip(rows, results) if r is None])
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is not None:
                # The connection is going down; the next session re-sends what is left.
                log.info("%s: publish failed: %s", self.settings.client_id, failure)
                return

    async def _publish(self, client: aiomqtt.Client, row: OutboxItem) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        if row.response_topic is not None:
            props.ResponseTopic = row.response_topic
        if row.correlation is not None:
            props.CorrelationData = row.correlation
        if row.expires_at is not None:
            # MQTT 5 3.3.2.3.3: the broker drops it once the call has stopped waiting.
            props.MessageExpiryInterval = max(1, math.ceil(row.expires_at - self._clock()))
        await client.publish(row.topic, row.payload, qos=1, retain=row.retain, properties=props)
