"""A TCP proxy on loopback that can freeze its connections: stop forwarding without closing
them, as a stuck proxy or a failover leaves them (no FIN, no RST). New connections go on
being forwarded, so a client that replaces a frozen connection gets through."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: socket.socket
    server: socket.socket
    frozen: threading.Event = field(default_factory=threading.Event)


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port`, a thread per direction."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def freeze(self) -> int:
        """Stop forwarding on every open connection, closing none; return how many."""
        with self._lock:
            for pair in self._pairs:
                pair.frozen.set()
            return len(self._pairs)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in (pair.client, pair.server):
                    with contextlib.suppress(OSError):
                        sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            for src, dst in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(pair, src, dst), name="tcp-proxy-pump", daemon=True
                ).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not pair.frozen.is_set():
                data = src.recv(65536)
                if not data or pair.frozen.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        if pair.frozen.is_set():
            # Frozen: hold both sockets open and forward nothing more, until the proxy closes.
            self._closed.wait()
            return
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
