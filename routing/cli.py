"""``dialtone router`` and ``dialtone agent`` subcommands.

The lead's CLI calls :func:`add_parsers` with its subparsers; each parser sets
``func`` (``args -> int`` exit status, blocking: it runs its own event loop).

    dialtone router --mqtt mqtt://127.0.0.1:1883 --config routing/examples/router.yaml
    dialtone agent set alice --state available --skills billing,sales --languages en,es \
        --uri sip:alice@127.0.0.1:5091 --mqtt mqtt://127.0.0.1:1883
    dialtone agent list --mqtt mqtt://127.0.0.1:1883
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt

from dialtone_errors import DialtoneError
from routing.contract import AGENTS_FILTER, AgentState, agent_topic, decode_agent_state
from routing.mqtt import MqttRouterService
from routing.mqtt_link import MqttSettings
from routing.router_config import RouterConfig
from routing.router_core import ReferenceRouter

DEFAULT_CONFIG = Path(__file__).parent / "examples" / "router.yaml"
log = logging.getLogger(__name__)


def add_parsers(subparsers: Any) -> None:
    """Register ``router`` and ``agent`` on an ``argparse`` subparsers object."""
    router = subparsers.add_parser("router", help="run the reference router over MQTT 5")
    router.add_argument("--mqtt", required=True, help="broker URL, mqtt://HOST:PORT")
    router.add_argument("--config", default=str(DEFAULT_CONFIG), help="router YAML")
    router.add_argument("--router-id", default="router-1", help="unique per router process")
    router.add_argument("--db", default=None,
                        help="SQLAlchemy URL of the outbox database (default: in memory)")
    router.add_argument("--announce-agents", action="store_true",
                        help="publish the config's agents as retained presence at start")
    router.set_defaults(func=run_router)

    agent = subparsers.add_parser("agent", help="set or list agent presence")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    set_p = agent_sub.add_parser("set", help="publish an agent's presence (retained)")
    set_p.add_argument("agent_id")
    set_p.add_argument("--state", required=True,
                       choices=["available", "busy", "wrap_up", "offline"])
    set_p.add_argument("--skills", default="", help="comma-separated")
    set_p.add_argument("--languages", default="", help="comma-separated; empty: any")
    set_p.add_argument("--uri", default=None, help="SIP URI (default sip:AGENT@127.0.0.1)")
    set_p.add_argument("--mqtt", required=True)
    set_p.set_defaults(func=run_agent_set)
    list_p = agent_sub.add_parser("list", help="print every agent's retained presence")
    list_p.add_argument("--mqtt", required=True)
    list_p.add_argument("--wait", type=float, default=0.5, help="seconds to collect")
    list_p.set_defaults(func=run_agent_list)


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def run_router(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM."""
    try:
        config = RouterConfig.from_yaml(args.config)
        MqttSettings.from_url(args.mqtt, client_id="check")
    except DialtoneError as exc:
        print(f"dialtone router: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(_serve_router(args, config))


async def _serve_router(args: argparse.Namespace, config: RouterConfig) -> int:
    router = ReferenceRouter(config, now=time.time(), router_id=args.router_id)
    service = MqttRouterService(args.mqtt, router, router_id=args.router_id, db_url=args.db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await service.start()
    if args.announce_agents:
        for state in config.agents:
            await service.publish_agent_state(state)
    log.info("router %s serving %s with %d agents", args.router_id, args.mqtt, len(config.agents))
    await stop.wait()
    await service.close()
    return 0


def run_agent_set(args: argparse.Namespace) -> int:
    try:
        state = AgentState(
            agent_id=args.agent_id, state=args.state, skills=_split(args.skills),
            languages=_split(args.languages), uri=args.uri or f"sip:{args.agent_id}@127.0.0.1",
            since=time.time(),
        )
        settings = MqttSettings.from_url(args.mqtt, client_id=f"dialtone-cli-{args.agent_id}")
    except (DialtoneError, ValueError) as exc:
        print(f"dialtone agent set: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_publish_retained(settings, agent_topic(state.agent_id), state.encode()))
    except aiomqtt.MqttError as exc:
        print(f"dialtone agent set: broker {args.mqtt}: {exc}", file=sys.stderr)
        return 1
    print(f"{state.agent_id}: {state.state}")
    return 0


async def _publish_retained(settings: MqttSettings, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(settings.host, settings.port, protocol=aiomqtt.ProtocolVersion.V5,
                              timeout=settings.operation_timeout_s) as client:
        await client.publish(topic, payload, qos=1, retain=True)


def run_agent_list(args: argparse.Namespace) -> int:
    try:
        settings = MqttSettings.from_url(args.mqtt, client_id="dialtone-cli-list")
        states = asyncio.run(collect_agent_states(settings, args.wait))
    except (DialtoneError, aiomqtt.MqttError) as exc:
        print(f"dialtone agent list: {exc}", file=sys.stderr)
        return 1
    for s in sorted(states.values(), key=lambda s: s.agent_id):
        print(f"{s.agent_id:16} {s.state:10} {','.join(s.skills):24} "
              f"{','.join(s.languages):10} {s.uri}")
    return 0


async def collect_agent_states(settings: MqttSettings, wait: float) -> dict[str, AgentState]:
    """Every agent's retained presence, gathered for ``wait`` seconds."""
    states: dict[str, AgentState] = {}
    async with aiomqtt.Client(settings.host, settings.port, protocol=aiomqtt.ProtocolVersion.V5,
                              timeout=settings.operation_timeout_s) as client:
        await client.subscribe(AGENTS_FILTER, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if isinstance(message.payload, bytes) and message.payload:
                        try:
                            state = decode_agent_state(message.payload)
                        except DialtoneError as exc:
                            log.warning("skipping %s: %s", message.topic.value, exc)
                            continue
                        states[state.agent_id] = state
    return states
