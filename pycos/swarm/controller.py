"""``Controller``: the client side of seed 002, bound to one gateway.

Owns the public class: which gateway (a ``Location``, ``"host:port"``, a node name, or
pynetwork's ``gateway_ip=`` / ``port=``), which node talks to it (the process's, or one made
when none runs), ``get_client`` (a pool ticket over the peer link, then a dedicated
authenticated connection; ``PoolFull`` when every handler is taken, or waiting for one with
``wait=True``), ``get_swarm(k)`` and ``close``. A process may hold many controllers, for one
gateway or many; a gateway serves many controllers. Imports the standard library,
``pycos.errors``, ``pycos.core``, ``pycos.net`` and the package's modules.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from typing import Any

from ..core import lowlevel
from ..errors import PycosError
from .client import Client
from .codec import safe_print
from .errors import PoolFull
from .nodes import gateway_location, node_for
from .ops import yield_or_block
from .server import RELEASE, STREAM_KIND, TICKET, local_registry
from .swarm import Swarm
from .wire import Wire

__all__ = ["Controller"]

logger = logging.getLogger("pycos.swarm")


class Controller:
    """A controller of one gateway.

    Args:
        gateway: where it is: a ``Location``, ``"host:port"`` or a node's name.
        download_dir: where ``get_files`` saves files by default.
        verbose: write one line per connection and transfer to ``sys.stderr``.
        gateway_ip, port: pynetwork's spelling of ``gateway`` (``gateway_ip=''`` is this
            machine, 127.0.0.1).
        name: the gateway's name on its node.
        node: the node to use (default: the process's; one is made, not announcing itself,
            when none runs, with ``**node_kwargs`` such as ``secret``).
        timeout: seconds any single wait for the gateway may last.

    Raises:
        TypeError, ValueError: a bad argument.
    """

    def __init__(self, gateway: Any = None, download_dir: Any = ".", verbose: bool = False, *,
                 gateway_ip: str | None = None, port: int | None = None, name: str = "gateway",
                 node: Any = None, timeout: float = 60.0, **node_kwargs: Any) -> None:
        if gateway is None:
            if port is None:
                raise TypeError("Controller needs the gateway: 'host:port', a Location, a node "
                                "name, or gateway_ip= and port=")
            gateway = f"{gateway_ip or '127.0.0.1'}:{port}"
        elif gateway_ip is not None or port is not None:
            raise TypeError("give the gateway once: as the first argument or as "
                            "gateway_ip=/port=")
        if not isinstance(download_dir, str | os.PathLike):
            raise TypeError(f"download_dir is a directory path, got {download_dir!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a number > 0, got {timeout!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name is the gateway's name (str), got {name!r}")
        if node is None and lowlevel.running_scheduler() is None:
            node_kwargs.setdefault("discover_peers", False)
        self.node, self._made_node = node_for(node, None, node_kwargs)
        self.gateway = gateway
        self.gateway_name = name
        self.download_dir = os.fspath(download_dir)
        self.verbose = bool(verbose)
        self.timeout = float(timeout)
        self.trusted = bool(self.node.config.allow_unsafe_pickle)
        self._location: Any = None
        self._lock = threading.Lock()
        self._clients: set[Client] = set()

    def __repr__(self) -> str:
        return f"<Controller of {self.gateway_name!r} at {self.gateway!r}>"

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()

    @property
    def clients(self) -> list[Client]:
        """The open clients of this controller."""
        with self._lock:
            return list(self._clients)

    def say(self, message: str, *args: Any) -> None:
        """A line for ``verbose`` controllers (and the log)."""
        text = message % args if args else message
        logger.info("%s", text)
        if self.verbose:
            safe_print(f"[pycos.swarm] {text}", file=sys.stderr)

    def location(self) -> Any:
        """The gateway's ``Location`` (a node name is located on first use)."""
        if self._location is None:
            self._location = gateway_location(self.gateway, self.node, self.timeout)
        return self._location

    # ------------------------------------------------------------------ clients
    @yield_or_block
    def get_client(self, wait: bool = False, timeout: float | None = None) -> Client:
        """Yield or block: a ``Client`` with a handler of its own at the gateway.

        Args:
            wait: when the pool is full, ask again until ``timeout`` (None: the
                controller's) instead of raising ``PoolFull`` at once.

        Raises:
            PoolFull: every handler is taken.
            pycos.errors.AccessDenied: this node may not use the gateway, or it has none of
                that name.
            pycos.errors.PeerLost: the gateway cannot be reached (or ``OSError``).
        """
        return self._connect(wait, self.timeout if timeout is None else timeout)

    def _connect(self, wait: bool, timeout: float) -> Client:
        loc = self.location()
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            try:
                token, facts = self._ticket(loc)
                break
            except PoolFull:
                left = deadline - time.monotonic()
                if not wait or left <= 0:
                    raise
                time.sleep(min(left, delay * (1 + random.random())))
                delay = min(delay * 2, 0.5)
        try:
            stream = self.node.open_stream(loc, STREAM_KIND, (self.gateway_name, token),
                                           self.timeout)
        except BaseException:
            self._release(loc, token)
            raise
        client = Client(self, Wire(stream, self.timeout), facts)
        with self._lock:
            self._clients.add(client)
        self.say("connected to gateway %r at %s", self.gateway_name, loc)
        return client

    def _ticket(self, loc: Any) -> tuple[bytes, dict[str, Any]]:
        registry = local_registry(loc)
        if registry is not None:  # a gateway of this very process
            return registry.ticket(self.gateway_name, self.node.name)
        reply = self.node.request(loc, TICKET, (self.gateway_name,), self.timeout)
        if not (isinstance(reply, tuple) and len(reply) == 2 and type(reply[0]) is bytes
                and isinstance(reply[1], dict)):
            raise PycosError(f"the gateway at {loc} answered a ticket request with "
                             "something else")
        return reply[0], reply[1]

    def _release(self, loc: Any, token: bytes) -> None:
        try:
            registry = local_registry(loc)
            if registry is not None:
                registry.on_release(None, (self.gateway_name, token))
            else:
                self.node.request(loc, RELEASE, (self.gateway_name, token), 5.0)
        except (PycosError, OSError) as exc:
            logger.debug("releasing a ticket failed: %s", exc)

    @yield_or_block
    def get_swarm(self, k: int, wait: bool = False, timeout: float | None = None) -> Swarm:
        """Yield or block: a ``Swarm`` of ``k`` clients (all, or ``PoolFull`` and none)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"a swarm has k >= 1 clients, got {k!r}")
        limit = self.timeout if timeout is None else timeout
        clients: list[Client] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def one() -> None:
            try:
                client = self._connect(wait, limit)
            except BaseException as exc:  # noqa: BLE001 - raised below
                with lock:
                    errors.append(exc)
                return
            with lock:
                clients.append(client)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            for client in clients:
                client._close_handler()
            raise errors[0]
        self.say("swarm of %d clients ready", k)
        return Swarm(self, clients)

    def forget(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)

    @yield_or_block
    def close(self) -> None:
        """Yield or block: close every client of this controller."""
        self._close()

    def _close(self) -> None:
        for client in self.clients:
            client._close_handler()
        if self._made_node:
            self.node.close()
