# MQTT 3.1.1 client on asyncio, for the MicroPython ESP32 port and CPython alike.
#
# Why our own: umqtt.simple blocks the event loop while it connects and publishes, never
# sends keepalive pings (a dead broker goes unnoticed until TCP gives up, minutes later),
# and no registry we can reach carries a current version.
#
# One link at a time, QoS 0 and 1 only, no session state kept across links: a QoS 1
# publish whose PUBACK does not come within `timeout` fails, and the owner's reconnect
# path decides what to send again. Every link fault ends the link, is kept in `error` and
# is raised from the next operation as OSError (or asyncio.TimeoutError, or MQTTError for
# a refusal or a broker that breaks the protocol).
# Section numbers (§) are those of the MQTT 3.1.1 OASIS standard.

import asyncio
import errno
import socket
import struct

from micropython import const

from uptime import ticks_diff, ticks_ms  # MicroPython's, or their CPython model

# MicroPython's asyncio imports these from its submodules on first use: take them now,
# while the heap is young, not in a first connect() on a fragmented heap (where the
# runtime's tests saw that import fail to find 640 B).
# (A statement, not aliases: an alias is one more name in the heap for good.)
asyncio.Event, asyncio.open_connection, asyncio.wait_for  # noqa: B018
_sleep_ms = getattr(asyncio, "sleep_ms", None) or (lambda ms: asyncio.sleep(ms / 1000))

# Control packet types, first byte with the flags each must carry (§2.2).
_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)  # §3.8.1: reserved flags 0010
_SUBACK = const(0x90)
_PINGRESP = const(0xD0)
_PINGREQ = const(b"\xc0\x00")
_DISCONNECT = const(b"\xe0\x00")

_MAX_LENGTH = const(268435455)  # four bytes of remaining length (§2.2.3)
_HEAD_ROOM = const(9)  # first byte, 4 length bytes, topic length, packet id
# A packet over the rate waits this long after it is read, so a broker sending 40,000
# a second gets the reader a few hundred times a second, not all of the CPU (
# 99.6% of the unix port's CPU before, docs/reliability.md).
_PACE_MS = const(2)

# MQTTError.code below zero: the broker broke the protocol, or refused a subscription.
PROTOCOL = const(-1)
REFUSED = const(-2)


_ONE = bytearray(1)  # see MQTTClient.byte


class MQTTError(Exception):
    """The broker said no (code: the CONNACK return code, §3.2.2.3: 4 bad user name or
    password, 5 not authorised) or broke the protocol (PROTOCOL, REFUSED)."""

    def __init__(self, code, text=""):
        super().__init__(code, text)
        self.code = code


def _bytes(s):
    return s.encode() if isinstance(s, str) else s


def _put_length(buf, i, n):
    # Remaining length, 7 bits a byte, low bits first (§2.2.3). Returns the index after it.
    while True:
        d = n & 0x7F
        n >>= 7
        buf[i] = d | 0x80 if n else d
        i += 1
        if not n:
            return i


def _packet(first, body):
    # A whole packet, for those sent once a link (CONNECT, SUBSCRIBE): simple over lean.
    head = bytearray(5)
    head[0] = first
    return head[: _put_length(head, 1, len(body))] + body


def _shut(w, flush):
    if not hasattr(w, "transport"):
        # MicroPython: Stream.close() does nothing and wait_closed() only closes the
        # socket, so close it here. Bytes the socket took still go out, then FIN.
        w.s.close()
    elif flush:
        w.transport.close()  # CPython: flushes what is buffered, then FIN
    else:
        w.transport.abort()  # drops the buffer and wakes a drain() stuck on a dead link


def _current_task():
    try:
        return asyncio.current_task()
    except RuntimeError:  # called outside the event loop
        return None


class MQTTClient:
    """connect(), then publish()/subscribe() from any task; on_message(topic, payload)
    runs in the reader task and must not block or raise (an exception it raises ends
    the link and becomes `error`). `ssl` is a tls.SSLContext the caller configured: note
    that MicroPython's PROTOCOL_TLS_CLIENT context starts with verify_mode CERT_NONE."""

    # fmt: off
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=60,
                 ssl=None, server_hostname=None, will=None, timeout=10, on_message=None,
                 open_connection=None, max_packet=4096, rate=10):
        # fmt: on
        if password is not None and user is None:
            raise ValueError("password without user")  # §3.1.2.9
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.will = will
        self.timeout = timeout
        self.on_message = on_message
        self.open_connection = open_connection or asyncio.open_connection
        self.max_packet = max_packet  # a larger incoming packet ends the link, unread
        self.rate = rate  # incoming packets a second (as many at once); beyond, see _receive
        self.error = None  # what ended the last link
        # What the link awaited when it failed ("DNS" while the host name is looked up):
        # the exceptions alone do not tell an owner a name that does not resolve (unix:
        # OSError("[addrinfo error -2]"), ESP32: a bare lwIP number) from a port that
        # refuses, nor a broker that never answers CONNECT from one that stopped
        # answering (each an empty asyncio.TimeoutError). See describe().
        self.stage = None
        self.ack_ms = None  # the last PUBACK's round trip: a slow broker shows here
        self.pings = 0  # PINGREQs sent
        self.dropped = 0  # incoming messages over the rate: read, not delivered
        # The link's stream reader and writer, its tasks, the acknowledgements awaited and
        # the last packet id take names the image holds already (r, w, tasks, pending, pid):
        # each new name is heap for good (docs/performance.md, "The account's names").
        self.r = self.w = None
        self.tasks = ()
        self._turn = asyncio.Event()  # set while no packet is being written
        self._turn.set()
        self.pending = {}  # packet id -> [Event, result]: a PUBACK or SUBACK awaited
        self.pid = 0
        self._head = bytearray(_HEAD_ROOM + 32)  # grows once for a longer topic
        self._view = memoryview(self._head)[:0]  # the last head[:n], kept for the next
        self._sent = self._heard = self._send_t = self._ping_t = 0
        self._sending = self._pinged = False
        self._sender = None  # the task inside drain(), while _sending

    @property
    def connected(self):
        return self.w is not None

    async def connect(self, clean_session=True):
        """Open the link, send CONNECT, wait for CONNACK; all within `timeout`. A link
        still open is dropped first, as by close()."""
        self.close()
        self.error = None
        try:
            await asyncio.wait_for(self._handshake(clean_session), self.timeout)
        except BaseException:  # refused, failed, timed out or cancelled: no half-open link
            self.close()
            raise
        self._sent = self._heard = ticks_ms()
        self._tokens = self.rate * 1000
        self._pinged = False
        tasks = [asyncio.create_task(self._read_loop())]
        if self.keepalive:
            tasks.append(asyncio.create_task(self._keep_alive()))
        self.tasks = tasks

    async def _handshake(self, clean_session):
        packet = self._connect_packet(clean_session)
        self.stage = "DNS"
        if self.open_connection is asyncio.open_connection:
            # Looked up here, before open_connection() looks it up again, so a failed
            # lookup is known as one (see stage). The second lookup is answered from
            # the resolver's cache (lwIP's on an ESP32). Both block the event loop, as
            # MicroPython has no other lookup: a DNS server that does not answer holds
            # the meter reader for lwIP's DNS timeout, which the UART driver's receive
            # buffer covers (hal_esp32.RXBUF). An injected opener resolves for itself.
            socket.getaddrinfo(self.host, self.port)
        self.stage = "TCP connection"
        if self.ssl:
            # A failed handshake is an exception, never a plaintext retry. MicroPython
            # runs it on the first write, CPython inside open_connection.
            r, w = await self.open_connection(
                self.host, self.port, ssl=self.ssl, server_hostname=self.server_hostname
            )
        else:
            r, w = await self.open_connection(self.host, self.port)
        self.r, self.w = r, w
        if self.ssl:
            # MicroPython runs the handshake on the first write: what fails now is TLS
            # (told by the stage, not by an errno: lwIP uses ECONNABORTED for TCP too).
            self.stage = "TLS handshake"
        try:
            w.write(packet)
            await w.drain()
            self.stage = "CONNACK"
            ack = await self._read(4)
        except ValueError as e:
            # MicroPython's mbedTLS raises ValueError for a certificate it rejects (wrong
            # CA, wrong name); to the owner's reconnect path that is a link refused.
            raise OSError(errno.ECONNABORTED, str(e)) from None
        if ack[0] != _CONNACK or ack[1] != 2:
            raise MQTTError(PROTOCOL, "not a CONNACK")
        if ack[3]:
            raise MQTTError(ack[3], "connection refused")
        self.stage = "answer"

    def _connect_packet(self, clean_session):
        # §3.1.2: protocol name, level 4, flags, keepalive; then the payload fields in
        # this order, each with a two-byte length (§3.1.3).
        flags = 0x02 if clean_session else 0
        fields = [self.client_id]
        if self.will:
            topic, message, retain, qos = self.will
            flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
            fields.append(topic)
            fields.append(message)
        if self.user is not None:
            flags |= 0x80
            fields.append(self.user)
        if self.password is not None:
            flags |= 0x40
            fields.append(self.password)
        body = bytearray(b"\x00\x04MQTT\x04")
        body.append(flags)
        body += struct.pack(b">H", self.keepalive)
        for f in fields:
            f = _bytes(f)
            body += struct.pack(b">H", len(f))
            body += f
        return _packet(_CONNECT, body)

    async def publish(self, topic, payload, retain=False, qos=0, release=None):
        """Send one message; with qos=1 wait for its PUBACK (bounded by `timeout`). release:
        called once the payload is in the socket's stream (copied where the socket did not
        take it all), before the drain: a buffer shared by several writers is free again.
        Not called when publish() raises before that (not connected, too long): a caller
        that holds a buffer releases it itself then, in a `finally`.

        The payload goes to the socket as it is, after a header built in a reused buffer.
        Heap per QoS 0 publish, unix port (MicroPython 1.29, 64-bit), 500 or 8000 payload
        bytes alike: 640 B, the frames of publish(), _send() and Stream.drain() (256 + 256
        + 128), about half that with an ESP32's 32-bit words; a str topic adds its
        encode(), 32 B (host_tests/test_mqtt.py).
        """
        if qos != 0 and qos != 1:
            raise ValueError("qos must be 0 or 1")
        topic = _bytes(topic)
        payload = _bytes(payload)
        n = len(topic)
        length = 2 + n + len(payload) + 2 * qos
        if length > _MAX_LENGTH:
            raise ValueError("payload too long")
        while self._sending:  # the header buffer is shared: fill it on our turn
            await self._turn.wait()
        head = self._head
        if len(head) < n + _HEAD_ROOM:
            head = self._head = bytearray(n + _HEAD_ROOM)
            self._view = memoryview(head)[:0]
        head[0] = _PUBLISH | qos << 1 | (1 if retain else 0)
        i = _put_length(head, 1, length)
        head[i] = n >> 8
        head[i + 1] = n & 0xFF
        i += 2
        for j in range(n):  # a slice assignment would allocate a slice object
            head[i + j] = topic[j]
        i += n
        if not qos:
            await self._send(self._head_to(i), payload, release)
            return
        pid = self._next_pid()
        head[i] = pid >> 8
        head[i + 1] = pid & 0xFF
        entry = self._expect(pid)
        sent = ticks_ms()
        try:
            await self._send(self._head_to(i + 2), payload, release)
            await self._ack(entry, "PUBACK")
        finally:
            self.pending.pop(pid, None)
        self.ack_ms = ticks_diff(ticks_ms(), sent)

    async def subscribe(self, topic, qos=0):
        """Subscribe and wait for SUBACK; returns the granted QoS (§3.9.3)."""
        if qos != 0 and qos != 1:
            raise ValueError("qos must be 0 or 1")  # QoS 2 deliveries would need PUBREC/PUBREL
        topic = _bytes(topic)
        pid = self._next_pid()
        packet = _packet(_SUBSCRIBE, struct.pack(b">HH", pid, len(topic)) + topic + bytes((qos,)))
        entry = self._expect(pid)
        try:
            await self._send(packet, None)
            granted = await self._ack(entry, "SUBACK")
        finally:
            self.pending.pop(pid, None)
        if granted == 0x80:
            raise MQTTError(REFUSED, "subscription refused")
        return granted

    async def disconnect(self):
        """Send DISCONNECT, so the broker discards the will (§3.14.4), and close."""
        if self.w is None:
            return
        self._stop_tasks()  # no PINGREQ after DISCONNECT
        try:
            await self._send(_DISCONNECT, None)
        finally:
            w = self.w
            self._end()
            if w:
                _shut(w, True)

    def describe(self, e):
        """What ended the link (e: what connect(), publish() or subscribe() raised), for
        the owner: a kind, a word told apart at a glance, then what went unanswered or
        the system's words. dns: the host name does not resolve; refused: nothing
        listens on the port; timeout: "no CONNACK" is a broker that takes the TCP
        connection but never answers, "no PUBACK" or "no PINGRESP" one that stopped
        answering, "no TCP connection" a host that does not answer at all; closed: the
        broker hung up; mqtt: it said no (4: bad user name or password, 5: not
        authorised) or is no MQTT broker; tls; memory; error: anything else."""
        if isinstance(e, MemoryError):
            return "memory: out of memory"
        if isinstance(e, MQTTError):
            return "mqtt: %s (%d)" % (e.args[1], e.code)
        if isinstance(e, asyncio.TimeoutError):
            return "timeout: no " + (self.stage or "answer")
        args = e.args
        code = args[0] if args else None  # the kind of a link's OSError, by its code
        kind = (
            "refused" if code == errno.ECONNREFUSED
            else "timeout" if code == errno.ETIMEDOUT
            else "closed" if code == errno.ECONNRESET
            else "error"
        )  # fmt: skip
        if self.stage == "TLS handshake":
            kind = "tls"
        # OSError(code, reason): the reason alone (mbedTLS's "The certificate validity
        # has expired"), as the kind already says what the code would.
        why = args[1] if len(args) > 1 and isinstance(args[1], str) else e
        return ("dns" if self.stage == "DNS" else kind) + ": " + str(why)

    # -- How a link ends -------------------------------------------------------------------
    # Two ways in for the owner, one for faults, and the steps they share:
    #   disconnect()  the owner's goodbye: stops the tasks, sends DISCONNECT (the broker then
    #                 discards the will, §3.14.4), then closes gracefully (_shut(w, True)).
    #   close()       the owner's or a fault's abrupt end: no DISCONNECT, so the broker
    #                 publishes the will (§3.1.2.5); unsent bytes are dropped (_shut(w, False)).
    #   _fail(exc)    a fault anywhere (reader, keepalive, send, a missing ack): keeps the
    #                 first cause in `error`, then close().
    #   _end()        what every end does: forgets the streams, so the next operation raises
    #                 _down(); _stop_tasks() cancels the reader and keepalive tasks (not the
    #                 one calling); cancels a sender stuck in drain(); wakes every ack waiter.
    #   _shut(w, flush)  the socket itself: FIN after what is buffered, or abort.
    #   _down()       what an operation on an ended link raises: the kept `error`, else
    #                 "not connected".
    def close(self):
        """Drop the link without DISCONNECT: the broker publishes the will (§3.1.2.5)."""
        w = self.w
        self._end()
        if w:
            _shut(w, False)

    def _stop_tasks(self):
        me = _current_task()  # a task cannot cancel itself (MicroPython raises)
        for t in self.tasks:
            if t is not me:
                t.cancel()
        self.tasks = ()

    def _end(self):
        w = self.w
        self.r = self.w = None
        self._stop_tasks()
        s = self._sender
        if s is not None and s is not _current_task() and not hasattr(w, "transport"):
            # MicroPython's poll never reports a socket closed under a waiting task, so
            # a drain() blocked on a dead link would wait forever: cancel its task,
            # before the socket closes. (CPython's abort() wakes it with an error.)
            s.cancel()
        for entry in self.pending.values():
            entry[0].set()  # waiters wake, find no result and raise the link's error

    def _fail(self, exc):
        if self.error is None:
            self.error = exc
        self.close()

    def _down(self):
        return self.error or OSError(errno.ENOTCONN, "not connected")

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1  # §2.3.1: non-zero 16 bits; 65535 wraps to 1
        return self.pid

    def _expect(self, pid):
        # Registered before the packet goes out, so an early ack is not missed.
        entry = [asyncio.Event(), None]
        self.pending[pid] = entry
        return entry

    async def _ack(self, entry, stage):
        try:
            await asyncio.wait_for(entry[0].wait(), self.timeout)
        except asyncio.TimeoutError as e:
            # No session is kept, so the message will not be sent again on this link:
            # end it, and let the owner's reconnect path decide.
            if self.error is None:
                self.stage = stage
            self._fail(e)
            raise
        if entry[1] is None:
            raise self._down()
        return entry[1]

    def _head_to(self, n):
        # head[:n]; the last view is kept, as a topic's header length seldom changes.
        if len(self._view) != n:
            self._view = memoryview(self._head)[:n]
        return self._view

    async def _send(self, head, body, release=None):
        # One packet: head then body, written without yielding in between so packets
        # never interleave, and no other task writes until it is drained: MicroPython's
        # Stream.drain() drops bytes another task appends meanwhile. (Not asyncio.Lock:
        # `async with` allocates 576 B per packet on the unix port; this gate nothing.)
        while self._sending:
            await self._turn.wait()
        w = self.w
        if w is None:
            raise self._down()
        self._sending = True
        self._turn.clear()
        self._sender = _current_task()
        self._send_t = ticks_ms()
        if hasattr(w, "transport"):
            # CPython >= 3.12 queues what the socket did not take without copying it,
            # and the next publish rewrites the header buffer (and the destinations' JSON
            # buffer, destination.py acquire()). MicroPython's Stream copies.
            head = bytes(head)
            body = body and bytes(body)
        done = False
        try:
            w.write(head)
            if body:
                w.write(body)
            if release is not None:
                release()
            await w.drain()
            if self.w is not w:  # ended meanwhile (CPython's drain() returns quietly)
                raise self._down()
            done = True
        except OSError as e:
            self._fail(e)
            raise
        except asyncio.CancelledError:
            if self.w is not w:  # _end() woke us out of a drain() on a dead link
                raise self._down() from None
            raise
        finally:
            self._sending = False
            self._sender = None
            self._turn.set()
            if not done and self.w is w:
                # Cancelled inside drain(): part of a packet may be out, so the stream
                # cannot carry another one.
                self._fail(OSError(errno.EIO, "send interrupted"))
        self._sent = ticks_ms()

    async def _read(self, n):
        try:
            return await self.r.readexactly(n)
        except EOFError:  # CPython's IncompleteReadError is one too
            raise OSError(errno.ECONNRESET, "broker closed the connection") from None

    async def _read_loop(self):
        try:
            while True:
                await self._receive()
        except Exception as e:  # every fault, the callback's too, ends the link and is kept
            self._fail(e)

    async def byte(self):
        # One byte of a packet's fixed header, into a buffer made once instead of a new bytes
        # object each (MicroPython's Stream.readinto; CPython's reader has none). One buffer
        # serves every client: readinto() fills it as it returns, with no task in between.
        r = self.r
        if not hasattr(r, "readinto"):
            return (await self._read(1))[0]
        one = _ONE
        while True:
            n = await r.readinto(one)
            if n:
                return one[0]
            if n == 0:  # the end of the stream
                raise OSError(errno.ECONNRESET, "broker closed the connection")
            # None: no byte yet (a TLS record not yet whole); readexactly() loops too

    async def _receive(self):
        # The fixed header a byte at a time (byte()), the body in one read: the one
        # allocation of a packet, at most max_packet bytes.
        first = await self.byte()
        n = 0
        shift = 0
        while True:
            d = await self.byte()
            n |= (d & 0x7F) << shift
            if not d & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTError(PROTOCOL, "remaining length")
        if n > self.max_packet:
            # Refused unread: skipping a PUBLISH that announces 268 MB held the reader
            # for the whole keepalive window (40 s).
            raise MQTTError(PROTOCOL, "packet of %d bytes" % n)
        body = await self._read(n) if n else b""
        now = ticks_ms()
        # A token bucket, in thousandths of a packet: `rate` a second, as many at once.
        # Beyond it a message is dropped and counted, and any packet waits _PACE_MS.
        t = self._tokens + min(ticks_diff(now, self._heard), 1000) * self.rate
        self._heard = now
        self._pinged = False  # any packet proves the broker is there
        kind = first & 0xF0
        if t >= 1000:
            self._tokens = min(t, self.rate * 1000) - 1000
        else:
            self._tokens = t
            await _sleep_ms(_PACE_MS)
            if kind == _PUBLISH:
                self.dropped += 1
                return
        if kind == _PINGRESP:
            return
        if kind == _PUBLISH:
            await self._deliver(first, body)
        elif kind == _PUBACK or kind == _SUBACK:
            if len(body) < (3 if kind == _SUBACK else 2):  # a broken broker's: not IndexError
                raise MQTTError(PROTOCOL, "short packet 0x%02x" % first)
            entry = self.pending.get(body[0] << 8 | body[1])
            if entry:  # else a late ack of a message that already failed: nothing waits
                entry[1] = body[2] if kind == _SUBACK else 0
                entry[0].set()
        else:
            raise MQTTError(PROTOCOL, "unexpected packet 0x%02x" % first)

    async def _deliver(self, first, body):
        qos = first >> 1 & 3
        if qos > 1:
            raise MQTTError(PROTOCOL, "QoS 2 delivery")  # we never subscribe above 1
        i = 2 + (body[0] << 8 | body[1]) if len(body) > 1 else 0
        if len(body) < i + 2 * qos or not i:  # topic or packet id cut short
            raise MQTTError(PROTOCOL, "short packet 0x%02x" % first)
        topic = body[2:i].decode()
        if qos:
            pid = body[i] << 8 | body[i + 1]
            i += 2
        if self.on_message:
            self.on_message(topic, body[i:])
        if qos:  # after delivery (§4.3.2): a message the callback failed on comes again
            await self._send(bytes((_PUBACK, 2, pid >> 8, pid & 0xFF)), None)

    async def _keep_alive(self):
        # §3.1.2.10: the broker drops a client silent for 1.5 x keepalive. Ping when
        # nothing was sent for half of it, and also when nothing was heard for half of it,
        # so a link that only publishes QoS 0 still learns that the broker is there.
        # No answer within `timeout`, or a send stuck that long, ends the link.
        half = self.keepalive * 500
        limit = int(self.timeout * 1000)
        tick = max(20, min(1000, half // 4, limit // 4)) / 1000
        try:
            while True:
                await asyncio.sleep(tick)
                now = ticks_ms()
                if self._sending and ticks_diff(now, self._send_t) > limit:
                    self._fail(OSError(errno.ETIMEDOUT, "send stalled"))
                    return
                if self._pinged:
                    if ticks_diff(now, self._ping_t) > limit:
                        self._fail(OSError(errno.ETIMEDOUT, "no PINGRESP"))
                        return
                elif self._sending or self.w is None:
                    pass  # a packet is on its way (that counts as sending), or it is over
                elif ticks_diff(now, self._sent) >= half or ticks_diff(now, self._heard) >= half:
                    self._pinged = True
                    self._ping_t = now
                    self.pings += 1
                    await self._send(_PINGREQ, None)
        except Exception as e:  # _send() ended the link and kept why; if not, end it here
            self._fail(e)
