"""A TCP proxy on loopback in front of a broker, with faults a test switches on and off.

Modes (set() switches them; a new mode applies to the connections already open too):
  pass     every chunk forwarded both ways as it comes
  delay    every chunk forwarded `delay` seconds after it came, in order: a slow broker or
           a slow link, one that still answers (`ways`: only to the broker, 0, or only to
           the client, 1: a PUBACK that comes late)
  stall    connections are taken and stay open, nothing moves either way, nothing is read:
           a broker (or a link) that hangs mid-session
  silent   a new connection is taken and what the client sends is read and thrown away,
           but nothing is ever answered and the broker never hears of it: a broker that
           accepts TCP but never answers CONNECT
Besides: close() stops listening (a connection attempt is refused, as for a dead broker)
and open() listens again on the same port; drop() ends every connection at once.

When the broker ends a connection (killed), the proxy ends the client's side of it too, so
the client sees what it would without the proxy. Threads, blocking sockets, 0.1 s polls:
for tests, not for speed.
"""

import collections
import socket
import threading
import time

MODES = ("pass", "delay", "stall", "silent")
_POLL = 0.1


class FaultProxy:
    def __init__(
        self, upstream_port, mode="pass", delay=0.0, ways=(0, 1), port=0, host="127.0.0.1"
    ):
        self.upstream = (host, upstream_port)
        self.host = host
        self.mode = mode
        self.delay = delay
        self.ways = ways  # the directions "delay" delays: 0 to the broker, 1 to the client
        self.port = port
        self.accepted = 0  # connections taken
        self.forwarded = [0, 0]  # bytes sent on: to the broker, to the client
        self._lock = threading.Lock()
        self._links = []
        self._server = None
        self._stopped = threading.Event()

    # -- control ------------------------------------------------------------------------

    def start(self):
        self.open()
        return self

    def set(self, mode, delay=None):
        if mode not in MODES:
            raise ValueError(mode)
        if delay is not None:
            self.delay = delay
        self.mode = mode

    def open(self):
        """Listen (again) on self.port; the first open() takes a free one."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.settimeout(_POLL)
        self.port = s.getsockname()[1]
        self._server = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def close(self):
        """Stop listening: connection attempts are refused. Open connections stay."""
        s, self._server = self._server, None
        if s is not None:
            s.close()

    def drop(self):
        """End every connection now, what the proxy held for them lost: a link cut (the
        client and the broker each see their connection closed)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.end()

    def stop(self):
        self._stopped.set()
        self.close()
        self.drop()

    # -- the connections ------------------------------------------------------------------

    def _accept(self, server):
        while not self._stopped.is_set() and self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self.accepted += 1
            link = _Link(self, client)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=link.run, daemon=True).start()


class _Link:
    """One client connection and, unless the proxy is silent, its broker connection."""

    def __init__(self, proxy, client):
        self.proxy = proxy
        self.client = client
        self.broker = None
        self.done = threading.Event()

    def run(self):
        p = self.proxy
        if p.mode == "silent":
            self._swallow()
            return
        try:
            self.broker = socket.create_connection(p.upstream, timeout=2)
        except OSError:
            self.end()  # the broker is down: the client's connection ends at once
            return
        for s in (self.client, self.broker):
            s.settimeout(_POLL)
        up = threading.Thread(target=self._pump, args=(self.client, self.broker, 0), daemon=True)
        up.start()
        self._pump(self.broker, self.client, 1)
        up.join()

    def _swallow(self):
        self.client.settimeout(_POLL)
        while not self.done.is_set():
            try:
                if not self.client.recv(4096):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self.end()

    def _pump(self, src, dst, way):
        """src to dst in the proxy's current mode, until either side ends."""
        p = self.proxy
        pending = collections.deque()  # (due time, chunk) read but not yet forwarded
        try:
            while not self.done.is_set():
                mode = p.mode
                if mode == "stall":
                    time.sleep(_POLL / 2)
                    continue
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    dst.sendall(pending.popleft()[1])
                wait = pending[0][0] - now if pending else _POLL
                src.settimeout(max(0.005, min(_POLL, wait)))
                try:
                    chunk = src.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                delay = p.delay if mode == "delay" and way in p.ways else 0.0
                pending.append((time.monotonic() + delay, chunk))
                if not delay and len(pending) == 1:
                    dst.sendall(pending.popleft()[1])
                p.forwarded[way] += len(chunk)
            # The far end hung up: what it sent before still goes out, in its time.
            while pending and not self.done.is_set():
                if p.mode == "stall":
                    time.sleep(_POLL / 2)
                    continue
                due, chunk = pending[0]
                time.sleep(max(0.0, due - time.monotonic()))
                dst.sendall(chunk)
                pending.popleft()
        except OSError:
            pass  # either socket failed: the link ends below, as it would without a proxy
        self.end()

    def end(self):
        if self.done.is_set():
            return
        self.done.set()
        for s in (self.client, self.broker):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more
            s.close()
