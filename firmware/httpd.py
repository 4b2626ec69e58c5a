# The dongle's web server: HTTP/1.1 over asyncio streams, one request per connection.
#
# Loaded only when something serves on it (the local API; later the owner's page): a dongle
# with neither opens no listening socket at all. Whoever serves registers its paths with
# route(); the server knows no path itself, so a page with a login adds its own (and checks
# its session in its own handlers) without a change here.
#
# Ours, not microdot's: beside a one-destination dongle's modules on the official image's
# model, microdot 2.7.0 (PyPI, compiled to .mpy) with three routes took 21.5 KB of heap,
# this module 10.0 KB with its request buffer; with microdot the dongle serving the local
# API would not fit in 96K (docs/performance.md, "The local API and its web server").
#
# Everything a client sends is bounded before it is held:
#   the request line and headers   _HEAD_MAX bytes in a buffer of the server's  431 / 414
#   a body                         only for routes that take one, with a
#                                  Content-Length up to _BODY_MAX               413 / 411
#   a head cut short               the client closed before the blank line     400
#   time to send the head          _HEAD_MS (a client sending a byte a second)  408
#   time to send the body          _HEAD_MS more, for the whole body            408
#   clients at once                _CLIENTS_MAX; one more is closed at once     (counted)
#   time to take the answer        SEND_MS (a client that never reads)          (closed)
#   time to take a stream's event  SEND_MS each (the same)                      (closed)
# Each answer and each refusal is counted by status code (`counts`), published with the
# dongle's stats.

import asyncio
import socket
import time

from micropython import const

# A HomeWizard client's request is ~200 B, a browser's with cookies ~700 B; the buffer then
# holds the answer of /api/v1/data: ~800 B for a 3-phase meter, 1,299 B for every field
# HomeWizard names at a register's largest value (test_local_api.py).
_HEAD_MAX = const(1344)
# Clients served at once, each with its own _HEAD_MAX buffer. The first buffer is made with
# the server, while the heap is whole, and kept: a buffer made when a client came often
# found no 1.3 KB in one piece at 96K (the meter's frames fragment the heap), and the client
# got nothing. The second is made for a second client at once and dropped after it
# (counted `memory` when there is no room): 1.3 KB less held for the meter all along.
_CLIENTS_MAX = const(2)
# The largest body a route may take: the owner's page's settings form, a config.json of one
# destination and a Wi-Fi network ~600 B, of four with field lists ~1.5 KB (config.py).
_BODY_MAX = const(2048)
_HEAD_MS = const(5000)
SEND_MS = 5000
# After a refusal, what the client still sends is read and dropped (at most _DRAIN_MAX bytes,
# for at most _DRAIN_MS) before the close: a close with unread bytes resets the connection,
# and the reset can reach the client before it has read the refusal (seen with a 4 KB head).
_DRAIN_MAX = const(8192)
_DRAIN_MS = const(500)
# Keys of `counts` besides status codes: connections closed because _CLIENTS_MAX were being
# served, that did not take their answer within SEND_MS, or that the client reset.
_BUSY = const("busy")
_SLOW = const("slow")
_GONE = const("gone")
MEMORY = "memory"

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class Request:
    """What a route sees: method, path, query (the text after "?", or ""), body (a
    bytearray, or None), header(name), and buf: the server's _HEAD_MAX bytes that held the
    request, the route's to write its answer into once it has read what it needs (an answer
    may be a memoryview of it)."""

    def __init__(self, method, path, query, head, n):
        self.method = method
        self.path = path
        self.query = query
        self.body = None
        self.buf = head
        self._n = n

    def header(self, name):
        """The value of header name (any case), or None; the first one when repeated."""
        return _header(self.buf, self._n, name.lower().encode())


class Server:
    def __init__(self):
        self.routes = {}  # path -> (method, handler)
        self.counts = {}  # status code as text, or "busy", "slow", "gone", "memory" -> times
        self._kept = bytearray(_HEAD_MAX)  # the first client's head buffer, free when set
        self.clients = 0
        self.listener = None
        # Called when a route's answer found no room in the heap (the owner's page ends its
        # live stream then: Page.make_room), or None. Not for a second client's buffer: two
        # browser tabs' requests meet often, and each is asked again by its page.
        self.on_memory = None

    def route(self, path, handler, method="GET"):
        """Serve handler(request) at path. It returns (status, content type, body as str or
        bytes), or an awaitable of that; a fourth item, when there, is more header lines
        (bytes, each ending in CRLF: a cookie, an encoding). The body may be an open file:
        it is sent in pieces of the request's buffer, no heap per byte, and closed. It may be
        a stream: an object whose `async stream(writer, server)` writes the answer's body for
        as long as it lasts (the page's live readings), each piece in the server's kept buffer
        while no request has it (`_kept`, used in place between two awaits), sent with no
        Content-Length, its end the connection's; the route bounds how many run, and
        `close()` is called after.
        A POST route gets request.body, at most _BODY_MAX."""
        self.routes[path] = (method, handler)

    async def start(self, host, port):
        """Listen on host:port; OSError when it cannot (the port taken)."""
        # backlog 2: further connections wait in the TCP stack, not in the heap.
        ai = socket.getaddrinfo(host, port)[0]
        s = socket.socket()
        s.setblocking(False)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(ai[-1])
            s.listen(2)
        except OSError:
            s.close()  # not left open behind a port that is taken
            raise
        self.listener = s
        asyncio.create_task(self._accept(s))

    async def _accept(self, s):
        # Our own accept loop, not asyncio.start_server's: that one ends for good when a
        # connection's stream or task finds no memory (asyncio/stream.py _serve, 1.23-1.28),
        # and then the server accepts nobody until a restart. Twenty clients of the page at
        # once at 96K did that (hanctl bench --page-clients 20). Here such a connection is
        # closed and counted `memory`, and the next one is taken.
        from asyncio import core  # MicroPython's (CPython imports this module, never serves)

        while True:
            try:
                yield core._io_queue.queue_read(s)  # as _serve waits: readable = a client
                c = s.accept()[0]
            except OSError:  # the client gave up before it was taken
                continue
            except MemoryError:
                self.count(MEMORY)
                await asyncio.sleep_ms(100)
                continue
            try:
                c.setblocking(False)
                stream = asyncio.StreamReader(c)  # MicroPython's one Stream class
                asyncio.create_task(self._client(stream, stream))
            except MemoryError:
                c.close()
                self.count(MEMORY)

    def count(self, key):
        """Count key (a status code, or a word such as "busy") in `counts`."""
        if key.__class__ is int:  # a status code: JSON keys are text (the stats message)
            key = "%d" % key
        self.counts[key] = self.counts.get(key, 0) + 1

    async def _client(self, reader, writer):
        head = body = None
        try:
            if self.clients >= _CLIENTS_MAX:
                # No answer: one would wait for a client that may not read.
                self.count(_BUSY)
                return
            head = self._kept or bytearray(_HEAD_MAX)  # MemoryError: counted below
            self._kept = None
            self.clients += 1
            try:
                n, end = await _within(_read_head(reader, head), _HEAD_MS)
                out = await self._serve(reader, head, n, end)
            except asyncio.TimeoutError:  # a head or body sent a byte at a time, or never ended
                out = _refused(self, 408, "the request took too long")
            status = out[0]
            body = out[2]
            if status:
                try:
                    await _within(self._send(writer, out, head), SEND_MS)
                    if hasattr(body, "stream") and not out[4]:
                        # A stream holds neither a slot nor a buffer for its life: both are
                        # given back now, and it borrows the kept buffer for each event
                        # (page.py). A stream that held its 1,344 B buffer left no room at
                        # 96K for one more to keep: the page's next request found none.
                        self.clients -= 1
                        if self._kept is None:
                            self._kept = head
                        head = None
                        await body.stream(writer, self)
                except asyncio.TimeoutError:  # a client that does not take its answer
                    self.count(_SLOW)
                    status = 0
            if status >= 400:
                try:
                    await _within(_drain(reader, head), _DRAIN_MS)
                except asyncio.TimeoutError:  # the client sent no more: the usual end
                    pass
        except OSError:  # the client reset the connection: nothing to answer
            self.count(_GONE)
        except MemoryError:  # an answer found no room in the heap: the meter comes first
            self.count(MEMORY)
        finally:
            if hasattr(body, "close"):  # a file or a stream: closed, whatever happened
                body.close()
            if head is not None:
                self.clients -= 1
                if self._kept is None:  # one buffer is kept, whichever client ends first
                    self._kept = head
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:  # reset by the client: closed all the same
                pass

    async def _serve(self, reader, head, n, end):
        """(status, content type, body, more header lines, HEAD) for the request whose head
        is head[:end], of which n bytes were read; status 0: nothing to send."""
        if end < 0:
            if n == 0:
                return 0, None, None  # connected and closed: nothing asked
            if n < len(head):  # the client closed (or half-closed) before the blank line
                return _refused(self, 400, "the request head ended before its blank line")
            line = head.find(b"\r\n", 0, n) >= 0  # the request line is whole
            return _refused(self, 431 if line else 414, "request head longer than %d bytes"
                            % _HEAD_MAX)  # fmt: skip
        first = head.find(b"\r\n")
        try:
            method, target, version = bytes(head[:first]).decode().split(" ")
        except ValueError:  # not three words, or not UTF-8
            return _refused(self, 400, "not an HTTP request line")
        if version[:5] != "HTTP/" or target[:1] != "/":
            return _refused(self, 400, "not an HTTP request line")
        q = target.find("?")
        path, query = (target, "") if q < 0 else (target[:q], target[q + 1 :])
        found = self.routes.get(path)
        if found is None:
            return _refused(self, 404, "no such path")
        if method != found[0] and not (method == "HEAD" and found[0] == "GET"):
            return _refused(self, 405, "use " + found[0])
        req = Request(method, path, query, head, end)
        chunked = req.header("transfer-encoding")
        length = req.header("content-length")
        if found[0] == "POST":
            if chunked is not None or length is None:
                return _refused(self, 411, "a body needs a Content-Length")
            try:
                size = int(length)
            except ValueError:
                return _refused(self, 400, "Content-Length is not a number")
            if not 0 <= size <= _BODY_MAX:
                return _refused(self, 413, "a body of at most %d bytes" % _BODY_MAX)
            body = bytearray(size)
            got = n - end  # what came with the head
            body[: min(got, size)] = head[end : end + min(got, size)]
            # One deadline for the whole body: a byte a second under a per-read limit
            # would hold the client's buffer for half an hour.
            until = time.ticks_add(time.ticks_ms(), _HEAD_MS)
            while got < size:
                left = time.ticks_diff(until, time.ticks_ms())
                if left <= 0:
                    raise asyncio.TimeoutError
                k = await _within(reader.readinto(memoryview(body)[got:]), left)
                if not k:
                    return _refused(self, 400, "the body ended before its Content-Length")
                got += k
            req.body = body
        elif chunked is not None or (length is not None and length.strip() != "0"):
            return _refused(self, 400, "a %s takes no body" % method)
        try:
            out = found[1](req)
            if not isinstance(out, tuple):
                out = await out
        # No room for the answer, in the heap or in its buffer: the meter comes first (and
        # a live stream of the page's, if one runs, ends to make room).
        except (MemoryError, OverflowError) as e:
            if e.__class__ is MemoryError and self.on_memory:
                self.on_memory()
            return _refused(self, 500, "no memory for this answer now")
        try:
            self.count(out[0])
            return out[0], out[1], out[2], out[3] if len(out) > 3 else b"", method == "HEAD"
        except MemoryError:  # a file or a stream made for the answer is not left open
            if hasattr(out[2], "close"):
                out[2].close()
            raise

    async def _send(self, writer, out, buf):
        """Send the answer out (of _serve); a file body in pieces of buf."""
        status, ctype, body = out[0], out[1], out[2]
        if isinstance(body, str):
            body = body.encode()  # bytes, or a memoryview of a route's buffer, as they are
        if hasattr(body, "readinto"):
            size = body.seek(0, 2)  # a file: its length, then back to its start
            body.seek(0)
        elif hasattr(body, "stream"):  # its length unknown: the connection's close ends it
            size = -1
        else:
            size = len(body)
        # The reason phrase is for people (RFC 9112 section 4: clients act on the code); a
        # refusal says why in its body. No table of phrases: each string took heap.
        # A HEAD's answer says the length its GET's would have (RFC 9110 section 9.3.2).
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s"
                     b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
                     % (status, b"OK" if status == 200 else b"Refused", ctype.encode(),
                        b"Content-Length: %d\r\n" % size if size >= 0 else b"",
                        out[3]))  # fmt: skip
        if out[4] or size < 0:
            pass  # HEAD, or a stream (Server._client sends it): the head alone
        elif not hasattr(body, "readinto"):
            writer.write(body)
        else:
            mv = memoryview(buf)
            while True:
                k = body.readinto(buf)
                if not k:
                    break
                writer.write(mv[:k])
                await writer.drain()  # one piece in flight: the buffer is written again
        await writer.drain()


async def serve(hal):
    """A Server listening where hal.listen() says (port 80 on a board; `hanctl run --http
    HOST:PORT` on the unix port), before any route is added; None when it cannot (no
    address, or the port is taken): the meter and the destinations run on regardless."""
    where = hal.listen()  # "listen": a name the image has, no qstr of ours (STYLE: heap)
    if where is None:
        hal.log("web server: not started (no address; `hanctl run --http HOST:PORT` gives one)")
        return None
    server = Server()
    try:
        await server.start(where[0], where[1])
    except OSError as e:  # the port is taken (EADDRINUSE)
        hal.log("web server: cannot listen on", "%s:%d" % (where[0], where[1]), repr(e))
        return None
    hal.log("web server on", "%s:%d" % (where[0], where[1]))
    return server


def refusal(status, why):
    """A route's refusal: (status, JSON, a body in the form of HomeWizard's errors, API v1)."""
    return status, JSON, '{"error": {"id": %d, "description": "%s"}}' % (status, why)


def _refused(server, status, why):
    """A counted refusal, as refusal() makes it, answered as _serve's are."""
    server.count(status)
    return refusal(status, why) + (b"", False)


async def _within(coro, ms):
    """await coro for at most ms (asyncio.TimeoutError after), its OSError raised here, in
    the client's task. asyncio.wait_for_ms runs coro in a task of its own, which can still
    be running when the client's task has given up and closed the socket: it then raised
    EBADF where nobody awaited it, and the loop printed "Task exception wasn't retrieved"
    (20 page clients at 96K on a loaded machine, test_page_load.py: 2 runs of 8)."""
    r = await asyncio.wait_for_ms(_quiet(coro), ms)
    if isinstance(r, OSError):
        raise r
    return r


async def _quiet(coro):
    try:
        return await coro
    except OSError as e:  # as a value: see _within()
        return e


async def _read_head(reader, head):
    """Read into head until the blank line after the headers: (bytes read, offset after
    the blank line), or (bytes read, -1) when the connection ended or head filled first."""
    n = 0
    size = len(head)
    mv = memoryview(head)
    while n < size:
        k = await reader.readinto(mv[n:])
        if not k:
            return n, -1
        # The blank line may straddle two reads: look from 3 bytes before the new ones.
        i = head.find(b"\r\n\r\n", max(0, n - 3), n + k)
        n += k
        if i >= 0:
            return n, i + 4
    return n, -1


async def _drain(reader, buf):
    """Read and drop what the client sends, up to _DRAIN_MAX bytes or its end."""
    n = 0
    while n < _DRAIN_MAX:
        k = await reader.readinto(buf)
        if not k:
            return
        n += k


def _header(head, n, name):
    """Value of header name (lowercase bytes) in head[:n], or None."""
    i = head.find(b"\r\n", 0, n) + 2  # after the request line
    while i < n:
        j = head.find(b"\r\n", i, n)
        if j <= i:
            return None
        c = head.find(b":", i, j)
        if c > i and bytes(head[i:c]).strip().lower() == name:
            try:
                return bytes(head[c + 1 : j]).strip().decode()
            except ValueError:  # not UTF-8 (UnicodeError): there, but unreadable
                return ""
        i = j + 2
    return None
