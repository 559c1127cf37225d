"""Choosing the routing bus: embedded reference router, or MQTT 5 broker.

``dialtone serve`` calls :func:`open_bus`: without ``--mqtt`` it gets the
in-memory bus running the reference router in-process (the ``make run``
default); with ``--mqtt mqtt://HOST:PORT`` it gets the MQTT bus, and the routing
core (``dialtone router`` or the contact centre's own) answers over the broker.
"""

from __future__ import annotations

import time
from pathlib import Path

from routing.bus import InMemoryBus, RoutingBus
from routing.mqtt import MqttRoutingBus
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter

DEFAULT_ROUTER_CONFIG = Path(__file__).parent / "examples" / "router.yaml"


def open_bus(
    mqtt_url: str | None,
    *,
    node_id: str,
    router_config: str | Path | RouterConfig | None = None,
    db_url: str | None = None,
) -> RoutingBus:
    """The bus for a node; call ``await bus.start()`` then, and ``await bus.close()`` at exit.

    ``router_config`` (a YAML path or a :class:`RouterConfig`; default
    routing/examples/router.yaml) is used only by the embedded router.
    ``db_url`` is the SQLAlchemy URL holding the MQTT outbox (None: in memory).
    """
    if mqtt_url:
        return MqttRoutingBus(mqtt_url, node_id, db_url=db_url)
    if isinstance(router_config, RouterConfig):
        config = router_config
    else:
        config = RouterConfig.from_yaml(router_config or DEFAULT_ROUTER_CONFIG)
    return InMemoryBus(ReferenceRouter(config, now=time.time()), node_id=node_id)
