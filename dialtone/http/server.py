"""Running the console inside the node: uvicorn as one more layer of the node's lifespan.

The node owns the process's signals (SIGINT/SIGTERM stop every layer in reverse); uvicorn's
own signal capture is turned off, and the node stops the console by ``should_exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

__all__ = ["ConsoleServer"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the node handles signals


class ConsoleServer:
    """uvicorn serving ``app`` on ``host:port`` (port 0: the OS picks; see ``address``)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                             lifespan="on", access_log=False,
                                             timeout_graceful_shutdown=2))
        self._task: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None

    async def start(self, timeout: float = 10.0) -> tuple[str, int]:
        self._task = asyncio.create_task(self.server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises the bind error
                raise OSError("the console stopped while starting")
            if loop.time() > deadline:
                raise TimeoutError("the console did not start")
            await asyncio.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        self.address = (str(host), int(port))
        return self.address

    async def close(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
