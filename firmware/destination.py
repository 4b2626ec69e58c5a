# One destination the owner configured: its MQTT connection, its share level, its queue.
#
# offer() is called by the meter link for every reading and never waits: the view this
# destination may see goes into a one-slot buffer (live) and, for hourly energy, into the
# outage queue on flash. run() is this destination's own task: connect with exponential
# backoff and jitter, then publish what offer() left, oldest energy first (QoS 1, so
# delivery is at-least-once), live readings as they come (QoS 0; while offline they are
# dropped and counted), stats every stats_interval (60 s), Home Assistant discovery.
#
# Topics under the destination's base: reading (each message, filtered by the share
# level), energy (hourly registers, retained), energy_now (the registers counted on with
# the power, retained, for Home Assistant: energynow.py), status (retained "online", last will
# "offline"), stats (diagnostics, every 60 s), tariff (the capacity tariff's figures,
# retained, when the config has a "tariff" and the share lets it out: share.py).

import asyncio
import gc
import json
import os
import random
import sys
import time

from micropython import const

import obis
import reading as reading_json
from mqtt import MQTTClient
from outbox import Outbox
from share import Share, is_energy, is_hourly

# const(): folded in by the compiler, no global and no interned name (the dongle's names
# fill five qstr pools; one more takes a sixth, ~4.6 KB: docs/performance.md).
_JSON_MAX = const(1536)  # the longest reading seen: 27 registers of an Aidon SE List 3, ~1 KB
_ENERGY_MAX = const(512)  # energy registers, their time and the meter id: ~300 bytes
_RAW_MAX = const(512)  # line bytes waiting for the raw topic: 2 s of a 2400 baud line
_HA_STATUS = const("homeassistant/status")  # Home Assistant says "online" there after a start
_HA_AGAIN_MS = const(30000)  # Home Assistant takes longer than this to restart
# A discovery round that found no memory: the next one after 1 s, then 2, 4, ... 64 s (a
# heap short for a moment, as at the first List 3 beside the tariff, has room again within
# seconds; one that stays short is not made to load 8 KB at every reading).
_ROOM_FIRST_MS = const(1000)
_ROOM_MAX_MS = const(64000)
_HEALTHY_MS = const(60000)  # a session this long starts the backoff over
_ERROR_MAX = const(60)  # last_error's characters kept: four destinations' stats fit _JSON_MAX
# Fields learned for discovery: the 50 canonical ones and 30 more. The most in a real
# reading is 45, 17 of them codes without a name (a DSMR 5 telegram, ../shared/vectors).
# A line of ever new OBIS codes grew the set until MicroPython's set, failing to grow,
# was left corrupt: a segfault at the next lookup (docs/reliability.md).
_FIELDS_MAX = const(80)
# Readings without a meter id before discovery goes ahead without one: a meter names itself
# in List 2 (every 10 s, so within 5 readings) or in every P1 telegram; one that never
# does is announced after this many, under the node alone (discovery.device_key).
_ID_WAIT = const(15)
_ebuf = None  # made by the first Destination: see __init__
# The JSON of a live reading, the stats, the tariff or a discovery config, written by each
# destination in its turn (acquire()). The socket's stream copies what the socket does not
# take at once (asyncio's Stream.write), so the buffer is free again as soon as publish()
# has written it (its `release`), before the drain and the PUBACK: the others wait no yield.
# One of _JSON_MAX, not one a destination: steady heap 85,968 -> 81,632 B with four
# destinations at 96K (hanctl bench --pipeline --destinations 4), where marks.py, loaded
# at a hostile line, left a session out of memory or found no room itself (test_hostile_
# line.py: 6 runs in 20 on a busy machine; 0 in 16 after).
_writer = None  # the destination writing into Destination._buf, if any (acquire())
_turn = asyncio.Event()  # set when the buffer is released
# The destination sending a discovery round, if any: one at a time. Two rounds at once (a
# full and a live destination, both at the first List 2) held two sets of their
# transient names and ran out of memory at 96K (test_runtime_more's discovery test); the
# other waits for the ticker's next wake-up (1 s).
_announcing = None
# [ticks_ms of the last round that found no memory, the wait after it] (None: the last
# round found room), for every destination: the heap is the dongle's.
_no_room = None


class Destination:
    # tariff.Account with a message to send, kept while offline (tariff.py sets it). A class
    # attribute until then: a dongle without a tariff keeps its dicts as they were (heap).
    tariff = None
    discovery_full = False  # said once in the log: _fields full (a class attribute, as tariff)
    _buf = None  # the JSON of what goes out, every destination's (made by the first; acquire())
    # [the count's state, the count sent last, the fields], when this destination gets the
    # energy counted on between registers for Home Assistant (energynow.py sets it); () from
    # boot until then (dongle.py), None for none: a class attribute, as tariff.
    energynow = None

    def __init__(self, cfg, hostname, stats, uptime, state_dir="", files=None, salt=None,
                 tariff=False):  # fmt: skip
        self.cfg = cfg
        self.name = cfg["name"]
        self.base = cfg["topic"]
        self.hostname = hostname
        self.stats = stats  # callable: the shared counters as a dict
        self.uptime = uptime  # the dongle's uptime.Uptime: down_s does not wrap
        self.share = Share(cfg, tariff)
        self.outbox = Outbox(state_dir + "queue-%s.jsonl" % self.name)
        self.state_dir = state_dir
        # (load_json, save_json) of store: where discovery keeps what it announced, so it
        # can remove it again (discovery.py). None: nothing kept, nothing ever removed.
        self._files = files or (None, None)
        self.event = asyncio.Event()
        self.client = None
        self._live = None  # the latest live message not yet sent
        # Reading fields seen, for discovery: a dict's keys, not a set. MicroPython's set
        # takes its bigger size before it has the memory for it, so a MemoryError while it
        # grows leaves it pointing past its table, and the next `in` read outside it: the
        # dongle crashed (signal 11) under a line of ever new codes at 96K (test_bounded,
        # 40 a frame; interpreter 1.25, py/map.c mp_set_rehash). A dict allocates first.
        self._fields = {}
        self._meter = None  # (id, manufacturer, model) for discovery
        self._unnamed = 0  # readings without a meter id while _meter is None, up to _ID_WAIT
        self._discover = False  # discovery to (re)send
        self._stats_at = None
        self._queued_hour = None  # meter hour of the last energy message queued
        # The JSON of what goes out is written into buffers made once: a long-running
        # dongle's heap fragments, and a fresh 1 KB string per message is what ran out
        # first (hanctl bench --pipeline at 96K).
        if Destination._buf is None:  # every destination's: see acquire()
            Destination._buf = bytearray(_JSON_MAX)
        # The hourly message, while offer() queues it. offer() never waits, so every
        # destination uses the one buffer: 1.5 KB less with four, the margin a dongle
        # loading the .mpy needed at 96K (test_faults_network's four destinations).
        global _ebuf
        if _ebuf is None:
            _ebuf = bytearray(_ENERGY_MAX)
        self.salt = salt  # the dongle's secret for hashed Home Assistant ids (dongle.py)
        self.raw = bytearray(_RAW_MAX) if cfg.get("raw") else None  # see offer_raw()
        self._raw_n = 0
        self.raw_dropped = 0  # bytes of the line the raw topic did not get
        self._stats_ms = cfg.get("stats_interval", 60) * 1000
        self.connects = 0
        self.failures = 0
        self.published = 0
        self.dropped = 0
        self.discovery_dropped = 0  # fields not learned (_fields full, or no memory), per reading
        self.last_error = None  # what ended the last session or attempt (kept once connected)
        self._down_at = uptime.seconds()  # since when there is no session; None during one
        self._floor_ms = cfg.get("retry_min", 1) * 1000  # the first wait after a failure
        self.backoff_ms = self._floor_ms
        self._up_ms = None  # ticks when the session began
        self._ha_ms = None  # ticks of the last discovery Home Assistant's "online" asked for
        self.incoming_dropped = 0  # of sessions past: messages over the client's rate

    # -- called by the meter link: never waits ---------------------------------------------

    def offer(self, reading, now_ms):
        """Never raises: a reading this destination cannot take (no memory, a flash that
        fails under the outage queue) is dropped, counted and logged, and the meter link and
        the other destinations go on."""
        try:
            if self.cfg["discovery"]:
                # From every reading, not only those a live share lets out: its gate let List 1
                # through (no meter id, power import alone) and discovery waited forever
                # (Kaifa at a real pace). What the share allows of it is what may be announced.
                self._learn(reading)
            view = self.share.view(reading, now_ms)
            if view is None:
                return
            if is_hourly(view):
                # One energy message per meter hour: a P1 meter prints its registers in every
                # telegram, and the queue lives on flash.
                # Without the meter's time (DSMR 2.2/3.0), the dongle's own clock hour.
                hour = view.get("meter_time", "")[:13] or time.time() // 3600
                if hour != self._queued_hour:
                    self._queued_hour = hour
                    try:
                        n = reading_json.write(_energy(view), _ebuf)
                    except OverflowError:  # longer than any meter's: counted, not queued
                        self.dropped += 1
                    else:
                        self.outbox.append(memoryview(_ebuf)[:n])
            client = self.client
            if client is not None and client.connected:
                if self._live is not None:
                    self.dropped += 1  # the link outran the broker: the older one goes
                self._live = view  # made into JSON when it goes out (acquire())
            else:
                self.dropped += 1
            self.event.set()
        except (MemoryError, OSError) as e:
            self.dropped += 1
            print("hanport: destination", self.name, "dropped a reading:", repr(e))

    def offer_raw(self, buf, n):
        """The meter line's bytes as they arrived, for <base>/raw (only with "raw": true).
        Kept while the session sends them; dropped and counted when offline or full."""
        client = self.client
        k = self._raw_n
        if client is None or not client.connected or k + n > len(self.raw):
            self.raw_dropped += n
            return
        try:
            self.raw[k : k + n] = memoryview(buf)[:n]
        except MemoryError:  # the view's few bytes: the raw topic misses these, the link goes on
            self.raw_dropped += n
            return
        self._raw_n = k + n
        self.event.set()

    def _learn(self, reading):
        new = False
        fields = self._fields
        allows = self.share.allows
        for k in reading:
            if k in fields or not allows(k):
                continue
            if len(fields) < _FIELDS_MAX:  # checked before the dict grows, not after
                try:
                    fields[k] = None
                except MemoryError:  # not learnt now (counted); a later reading tries again
                    self.discovery_dropped += 1
                    continue
                # A round for a field it can announce, not for each code without a name: a
                # line of ever new codes kept the 8 KB module loaded, and the readings beside
                # it ran short of heap (test_bounded, full frames).
                new = new or k in obis.UNIT
            else:
                if not self.discovery_full:
                    print("hanport: destination", self.name, "learns no field past", k)
                    self.discovery_full = True
                self.discovery_dropped += 1
        if self._meter is None:
            if "meter_id" in reading:
                self._meter = (
                    reading["meter_id"],
                    reading.get("meter_manufacturer"),
                    reading.get("meter_model"),
                )
                new = True
            elif self._unnamed < _ID_WAIT:
                self._unnamed += 1
                new = self._unnamed == _ID_WAIT or new
        if new:
            self._discover = True

    # -- the destination's task ------------------------------------------------------------

    async def run(self):
        cap = self.cfg.get("retry_max", 300) * 1000
        while True:
            try:
                await self._session()
            except Exception as e:
                # Whatever ends a session is counted, logged and retried with backoff,
                # never the destination's task (the watchdog would reset the dongle, and
                # again at each connect: a broker's malformed packet, an IndexError in the
                # client, would take every destination down with it). MemoryError too: a
                # heap too fragmented for this message (after a gc the next one starts
                # clean); ValueError: a CA file that is no certificate.
                self.failures += 1
                c = self.client
                if isinstance(e, MemoryError):
                    why = "memory: out of memory"  # nothing allocated while the heap is short
                elif c is not None:
                    why = " ".join(c.describe(e).split())  # one line: mbedTLS wraps in \n
                else:
                    why = "error: %s" % e  # before the client: the CA file
                self.last_error = why[:_ERROR_MAX]
                print("hanport: destination", self.name, "failed:", why)
            finally:
                if self.client is not None:
                    self.client.close()
                    self.incoming_dropped += self.client.dropped
                self.client = None
                if self._down_at is None:
                    self._down_at = self.uptime.seconds()
                if self._live is not None:  # the session ended before it went out
                    self.dropped += 1
                    self._live = None
                # Raw bytes are not kept across an outage: glued to the next session's,
                # a capture would splice two streams without a mark.
                self.raw_dropped += self._raw_n
                self._raw_n = 0
            # It starts again from retry_min only after a session that lasted _HEALTHY_MS: a
            # broker that answers CONNECT and drops the link at once (over TLS a handshake
            # each time) got 15-31 attempts in 30 s when each CONNACK reset it.
            up = self._up_ms
            self._up_ms = None
            if up is not None and time.ticks_diff(time.ticks_ms(), up) >= _HEALTHY_MS:
                self.backoff_ms = self._floor_ms
            # Exponential backoff with jitter (0.5x..1.5x): dongles that lost the same
            # broker do not all come back in the same second.
            wait = self.backoff_ms // 2 + random.getrandbits(20) % (self.backoff_ms + 1)
            await asyncio.sleep_ms(wait)
            self.backoff_ms = max(self._floor_ms, min(cap, self.backoff_ms * 2))

    async def _session(self):
        cfg = self.cfg
        status = self.base + "/status"
        self.client = client = MQTTClient(
            cfg["client_id"],
            cfg["host"],
            cfg["port"],
            user=cfg.get("user"),
            password=cfg.get("password"),
            keepalive=cfg.get("keepalive", 60),
            ssl=_tls(cfg),
            server_hostname=(cfg["tls"] or {}).get("server_hostname") or cfg["host"],
            will=(status, b"offline", True, 1),
            timeout=cfg.get("timeout", 10),
            on_message=self._message,
            max_packet=128,  # we subscribe to homeassistant/status only: "online", "offline"
        )
        await client.connect()
        self.connects += 1
        self._up_ms = time.ticks_ms()
        self._down_at = None
        print("hanport: destination", self.name, "connected")
        await client.publish(status, b"online", retain=True, qos=1)
        if cfg["discovery"]:
            await client.subscribe(_HA_STATUS)
            self._discover = True
        elif self._files[0] is not None:
            # Discovery turned off: what it announced before is withdrawn once.
            try:
                os.stat(self.state_dir + "discovery-" + self.name + ".json")
                self._discover = True
            except OSError:  # never announced, or withdrawn already
                pass
        self._stats_at = time.ticks_add(time.ticks_ms(), -self._stats_ms)  # stats right away
        while client.connected:
            self.event.clear()  # before flushing: an offer() during it sets it again
            await self._flush(client)
            if client.connected:
                await self.event.wait()
        raise client.error or OSError(0)

    async def _flush(self, client):
        # What waits goes out in this order, one duty a section: the line's raw bytes, the
        # hourly energy queued through outages, the latest live reading, a discovery round,
        # the stats. One method, not five: as methods they held 304 B more of a 96K heap
        # with four destinations (hanctl bench --pipeline --destinations 4), and the heap
        # is what an ESP32 without PSRAM runs out of first.
        # -- raw: the meter line's bytes ---------------------------------------------------
        n = self._raw_n
        if n:
            # Bytes that arrive while these go out land behind them, then move down.
            await client.publish(self.base + "/raw", memoryview(self.raw)[:n])
            raw = self.raw
            rest = self._raw_n - n
            for i in range(rest):  # forwards, one by one: the two ranges may overlap
                raw[i] = raw[n + i]
            self._raw_n = rest
        # -- energy: the hourly messages, oldest first, QoS 1 -------------------------------
        box = self.outbox
        while len(box):
            await client.publish(self.base + "/energy", box.peek(), retain=True, qos=1)
            box.pop()
            self.published += 1
        # -- live: the latest reading the share let out -------------------------------------
        if self._live is not None:
            try:
                # Meanwhile a newer reading may replace this one: the newer goes.
                await self.acquire(client)
                view = self._live
                self._live = None
                try:
                    n = reading_json.write(view, self._buf)
                except OverflowError:  # longer than any meter's reading: counted, not sent
                    n = 0
                    self.dropped += 1
                if n:
                    try:
                        view = memoryview(self._buf)[:n]
                        await client.publish(self.base + "/reading", view, False, 0, self.release)
                    except BaseException:  # the session ends with this reading: counted
                        self.dropped += 1
                        raise
                    self.published += 1
            finally:
                self.release()
        # -- energy_now: the registers counted on with the power (energynow.py) ------------
        global _announcing, _no_room
        # Sent only while the module is loaded: energyfeed.py loads it again after a
        # round, at the next reading, where a MemoryError is counted. An import here, the
        # tick after a round, ended the session where it found no memory, and loaded
        # 1.8 KB to learn that nothing was new.
        energynow = sys.modules.get("energynow") if self.energynow else None
        if energynow is not None and _announcing is None:
            try:
                await self.acquire(client)
                await energynow.send(client, self)
            finally:
                self.release()
        # Not held through a discovery round below: the round drops the module from
        # sys.modules for its room, and this name kept its 1.8 KB in the heap.
        energynow = None
        # -- tariff: the capacity tariff's latest figures (tariff.py), retained -----------
        if self.tariff is not None:
            try:
                await self.acquire(client)
                await self.tariff.send(client, self)
            finally:
                self.release()
        # -- discovery: a round of Home Assistant configs -----------------------------------
        # With the meter's id (List 2, within 10 s on a real meter), or without one after
        # _ID_WAIT readings; a withdrawal (discovery turned off) needs neither.
        if (
            self._discover
            and _announcing is None
            and (self._meter is not None or self._unnamed >= _ID_WAIT or not self.cfg["discovery"])
            # (Past ticks_diff's range, 6.2 days on an ESP32, it wraps negative: long ago too.)
            and not (
                _no_room is not None
                and 0 <= time.ticks_diff(time.ticks_ms(), _no_room[0]) < _no_room[1]
            )
        ):
            self._discover = False
            _announcing = self
            # energynow's code (1.8 KB) leaves too, for the round: loaded again after it, at
            # the next reading (energyfeed.py, which holds its state).
            sys.modules.pop("energynow", None)
            # Collected first: the reading and its JSON, garbage by now, left 8.5 KB free at
            # 96K and the import failed; collected, 15 KB (unix port, two destinations).
            gc.collect()
            discovery = None
            try:
                # Inside the try: an import that found no memory left _announcing set, and
                # no destination had a round again (nor the tariff a load, nor energynow its
                # readings) until a reboot.
                import discovery  # only destinations with discovery on pay for it (8.4 KB)

                await discovery.send(client, self._buf, self, self._files[0], self._files[1])
                _no_room = None
            except OverflowError:  # a config longer than the buffer (a meter's odd strings):
                self.dropped += 1  # the rest of this round is dropped, counted, not retried
                print("hanport: destination", self.name, "discovery config too long")
            except MemoryError:
                # No room for the round now: its code (~7.7 KB) beside the tariff at 96K, or
                # a heap in pieces. A packet cut by it closed the client (mqtt.py _send);
                # otherwise the link is sound, and ending the session only brought the round
                # back at the next connect, out of memory again: a standing loop with no
                # reading published. So the readings go on, and the round comes again after
                # a wait that doubles (_ROOM_FIRST_MS .. _ROOM_MAX_MS) until one finds room.
                # Counted and said as a session's end was.
                if not client.connected:
                    raise
                wait = _ROOM_FIRST_MS if _no_room is None else min(2 * _no_room[1], _ROOM_MAX_MS)
                _no_room = [time.ticks_ms(), wait]
                self._discover = True
                self.failures += 1
                self.last_error = "memory: discovery round"
                print("hanport: destination", self.name, "discovery: out of memory, again in",
                      wait // 1000, "s")  # fmt: skip
            finally:
                _announcing = None
                # Sent on connect, when Home Assistant restarts and when a field is new, not
                # in between: its code leaves the heap until then. Measured on the 32-bit
                # .mpy-loaded image: docs/performance.md.
                discovery = None
                sys.modules.pop("discovery", None)
        # -- stats: every stats_interval ---------------------------------------------------
        now = time.ticks_ms()
        if time.ticks_diff(now, self._stats_at) >= self._stats_ms:
            self._stats_at = now
            stats = self.stats(self)
            try:
                await self.acquire(client)
                try:
                    n = _write_stats(stats, self._buf)
                except OverflowError:
                    # Longer than the buffer: four destinations with long names and errors.
                    # The others' errors cut to their kind ("dns", "tls"), then counted if
                    # still too long (see _ERROR_MAX).
                    for other in stats.get("destination", {}).get("others", ()):
                        if other["last_error"]:
                            other["last_error"] = other["last_error"].split(":")[0]
                    try:
                        n = _write_stats(stats, self._buf)
                    except OverflowError:
                        n = 0
                        self.dropped += 1
                if n:
                    await client.publish(
                        self.base + "/stats", memoryview(self._buf)[:n], False, 0, self.release
                    )
            finally:
                self.release()

    async def acquire(self, client):
        # Destination._buf for this destination's next message, once no other destination
        # writes into it and this one's client sends nothing else: publish() then writes
        # the message before its first yield, and release() comes at once. (Taken while
        # the client drained a PINGREQ into a broker that reads nothing, it would be held
        # until that session's timeout, and every destination with it.) So nothing yields
        # between acquire() and the write, and no other destination finds _writer set
        # today: the guard keeps a yield added there later from mixing two destinations'
        # JSON (test_ha_discovery.py's shared-buffer test: mixed, without the guards).
        global _writer
        while _writer is not None or client._sending:
            await (_turn if _writer is not None else client._turn).wait()
        _writer = self
        _turn.clear()

    def release(self):
        # Destination._buf back, if this destination holds it, to whoever waits in
        # acquire(); also publish()'s `release`, once the message is written.
        global _writer
        if _writer is self:
            _writer = None
            _turn.set()

    def _message(self, topic, payload):
        # Home Assistant announces "online" after it starts: send discovery again, at most
        # once in _HA_AGAIN_MS (a broker repeating it kept the dongle sending configs).
        if topic == _HA_STATUS and payload == b"online":
            now = time.ticks_ms()
            if self._ha_ms is None or time.ticks_diff(now, self._ha_ms) >= _HA_AGAIN_MS:
                self._ha_ms = now
                self._discover = True
                self.event.set()

    def counters(self, others=(), other=False):
        """This destination's counters, for its stats, with how `others` (the dongle's
        other destinations) fare if its share is "full"; other: only whether it works
        (if not, for how long and why) and how fast its broker answers (ack_ms: the last
        PUBACK's round trip), for the stats of another destination."""
        client = self.client
        down = self._down_at
        out = {
            "name": self.name,
            # A session, the broker's CONNACK received: not just a TCP link being made.
            "connected": down is None,
            "down_s": None if down is None else self.uptime.seconds() - down,
            "failures": self.failures,
            "last_error": self.last_error,
            "ack_ms": None if client is None else client.ack_ms,
        }
        if other:
            return out
        out["connects"] = self.connects
        out["reconnects"] = max(0, self.connects - 1)
        out["incoming_dropped"] = self.incoming_dropped + (client.dropped if client else 0)
        out["published"] = self.published
        out["queued"] = len(self.outbox)
        out["dropped"] = self.dropped + self.outbox.dropped
        out["raw_dropped_bytes"] = self.raw_dropped
        out["discovery_dropped"] = self.discovery_dropped
        if self.share.level == "full":
            # A destination's own stats cannot reach a broker it fails to reach: the
            # owner learns of it from another one. Only a "full" destination hears of
            # the others (it gets everything already): one with a lesser share may be
            # somebody else's broker, which need not know what else the dongle feeds.
            out["others"] = [d.counters(other=True) for d in others if d is not self]
        return out


def _write_stats(stats, buf, n=0):
    """stats (a dict of numbers, texts, lists and dicts of them) as JSON into buf at n,
    piece by piece, a dict in it too: no text of the whole destination's counters with
    the others' is made. Returns the end."""
    n = reading_json.put(buf, n, "{")
    sep = ""
    for k in stats:
        v = stats[k]
        n = reading_json.put(buf, n, sep + json.dumps(k) + ": ")
        if isinstance(v, dict):
            n = _write_stats(v, buf, n)
        else:
            n = reading_json.put(buf, n, json.dumps(v))
        sep = ", "
    return reading_json.put(buf, n, "}")


def _energy(view):
    """The hourly message: energy registers with their time (and the meter, if shared)."""
    out = {}
    for k in view:
        if k == "meter_time" or k == "meter_id" or is_energy(k):
            out[k] = view[k]
    return out


def _tls(cfg):
    opts = cfg["tls"]
    if not opts:
        return None
    # The built-in `tls` (MicroPython >= 1.23), not micropython-lib's `ssl` wrapper around
    # it: one module less in the heap, and an image without micropython-lib still has it.
    # Only destinations with TLS pay for the import.
    import tls

    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    if opts.get("verify", True):
        ctx.verify_mode = tls.CERT_REQUIRED
        try:
            f = open(opts["ca"], "rb")
        except OSError as e:  # "[Errno 2] ENOENT" alone named neither the file nor the key
            raise OSError("tls.ca: %s cannot be read (%s)" % (opts["ca"], e)) from None
        with f:
            ctx.load_verify_locations(_der(f.read()))  # the built-in takes cadata only
    else:
        ctx.verify_mode = tls.CERT_NONE
    return ctx


def _der(ca):
    """A PEM CA certificate as DER: the unix port's mbedTLS rejects PEM ("invalid cert"),
    DER works on every port, so the owner may give either."""
    if not ca.startswith(b"-----BEGIN"):
        return ca
    from binascii import a2b_base64

    parts = ca.split(b"-----")  # "", BEGIN CERTIFICATE, body, END CERTIFICATE, ...
    if len(parts) < 3:
        raise ValueError("CA file is not a PEM certificate")
    return a2b_base64(parts[2].replace(b"\n", b"").replace(b"\r", b""))
