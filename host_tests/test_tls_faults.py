"""TLS faults, end to end: the firmware's main on the MicroPython unix port, Debian's
mosquitto with certificates openssl makes here, a meter on a TCP "UART".

A broker whose certificate has expired, is not valid yet, or names another host than the
one the dongle asked for (its host, or tls.server_hostname) is refused, with verification
on by default (a "tls" with a CA and no "verify" key). Each refusal is logged with its
reason, counted, backed off, and never followed by a plaintext attempt: the broker's
plain listener sees no connection from the dongle, and a relay between the two reads only
TLS handshake records. The wrong CA and the wrong password are in test_runtime_more.py.
"""

import json
import shutil
import time

import pytest

import rig
from audit import Wire
from e2e import (
    PASSWORD,
    USER,
    Dongle,
    check_backoff,
    clients_on,
    power_stream,
    probes,
    uart,
)
from hanctl.certs import SAN, server_cert
from hanctl.simulate import Server

pytestmark = [
    pytest.mark.skipif(
        shutil.which("mosquitto") is None and not rig.Path(rig.MOSQUITTO).exists(),
        reason="Debian's mosquitto is not installed (.ci/run installs it)",
    ),
    pytest.mark.tls,
]

OTHER_NAME = "broker.example.net"
BOTH = SAN  # what rig.make_ca's server certificate names: localhost and 127.0.0.1


# name: (subjectAltName, (start, end) or None, the destination's extra keys, the reason
# MicroPython's mbedTLS gives, as the log shows it)
FAULTS = {
    "expired": (BOTH, ("20200101000000Z", "20200102000000Z"), {}, "validity has expired"),
    "not-yet-valid": (
        BOTH,
        ("20990101000000Z", "20990102000000Z"),
        {},
        "validity starts in the future",
    ),
    # A certificate for another host; the dongle asks for "localhost" (looked up by name).
    "other-host-name": (f"DNS:{OTHER_NAME}", None, {"host": "localhost"}, "does not match"),
    # The broker's address is 127.0.0.1, its certificate names only "localhost".
    "ip-not-in-certificate": ("DNS:localhost", None, {}, "does not match"),
    # A good certificate for 127.0.0.1, but the owner's server_hostname says another name.
    "server_hostname-differs": (BOTH, None, {"server_hostname": OTHER_NAME}, "does not match"),
}


def wait_stats(sub, suffix, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sub.json(suffix)
        if got:
            return got[0]
        time.sleep(0.1)
    raise AssertionError(f"no stats on *{suffix}")


@pytest.mark.parametrize("fault", FAULTS)
def test_a_bad_certificate_is_refused_counted_backed_off_and_never_plaintext(parts, fault):
    tmp, track = parts
    san, dates, extra, reason = FAULTS[fault]
    ca = rig.make_ca(tmp)
    bad = server_cert(ca, tmp / "bad", san, *(dates or ()))
    b = track(rig.tls_broker(tmp, "tls", bad, {USER: PASSWORD}).start())
    start = probes(b)
    wire = track(Wire(b.tls_port))  # what anyone on the network between them reads
    shutil.copy(ca / "ca.pem", tmp / "ca.pem")  # the right CA: only the certificate is bad
    p = track(rig.Broker(tmp, "plain").start())  # another destination, to show the rest runs
    sub_p = track(rig.Subscriber(p))
    meter = track(Server(power_stream(count=1000)).start())
    tls = {"ca": "ca.pem"}  # no "verify": verification is the default
    if "server_hostname" in extra:
        tls["server_hostname"] = extra["server_hostname"]
    t = {
        "port": wire.port,
        "tls": tls,
        "user": USER,
        "password": PASSWORD,
        "retry_min": 1,
        "retry_max": 4,
        "host": extra.get("host", "127.0.0.1"),
    }
    cfg = rig.config(rig.destination("T", b, **t), rig.destination("P", p))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())

    failed = dongle.wait_lines("destination T failed:", 4, timeout=40)
    failing_from = failed[0][0]
    time.sleep(0.3)  # the broker's log of the fourth attempt; the fifth is >= 2 s away
    check_backoff([t for t, _ in failed], 1, 4)  # waits of ~1, 2, 4 s: they grow
    checked = json.loads((tmp / "fs" / "config.checked").read_text())["config"]
    assert checked["destinations"][0]["tls"]["verify"] is True
    log = "\n".join(dongle.output)
    assert reason in log, log  # the owner can tell which fault it is
    assert not dongle.lines("destination T connected")
    # Every attempt was a TLS handshake on the TLS listener, through the relay; no MQTT
    # session came of any, and none went to the plain listener.
    # The relay records a connection once its own to the broker is made, which the broker
    # may log first: on a loaded CI machine a fifth attempt was in the broker's log (5)
    # and not yet in the relay's list (4). The two are compared once they agree.

    def agree():
        """the broker's TLS connections, as many as the relay's"""
        n = len(rig.connections_on(b, b.tls_port))
        return n if n == len(wire.connections) else None

    tries = rig.wait_for(agree, 10)
    assert tries >= 4
    assert clients_on(b, b.tls_port) == []
    assert rig.connections_on(b, b.port)[start:] == []
    for up, down in wire.connections[: len(failed)]:  # the attempts that ended (a later one
        # may not have sent its ClientHello yet)
        assert up[:3] == b"\x16\x03\x01" or up[:3] == b"\x16\x03\x03", up[:16]  # ClientHello
        assert down[:1] == b"\x16"  # the broker's handshake (with its certificate)
        for clear in (b"MQTT", PASSWORD.encode(), b"hanport/", b"hanport-test"):
            assert clear not in up, clear
    # Meanwhile the meter was read and the other destination got every reading, in order.
    during = [json.loads(m[1])["active_power_import"] for m in sub_p.on("P/reading")]
    during = [w for m, w in zip(sub_p.on("P/reading"), during, strict=True) if m[3] >= failing_from]
    assert len(during) >= 10 and during == list(range(during[0], during[0] + len(during)))

    # The owner fixes the broker's certificate (same ports): the dongle gets in at its next
    # attempt, and its first stats count the refused attempts.
    b.stop()
    fixed = ca  # rig.make_ca's certificate: localhost and 127.0.0.1
    if fault == "server_hostname-differs":  # the dongle asks for OTHER_NAME
        fixed = server_cert(ca, tmp / "fixed", f"DNS:{OTHER_NAME}", cn=OTHER_NAME)
    good = track(rig.tls_broker(tmp, "good", fixed, {USER: PASSWORD}, b.port, b.tls_port))
    good.start()
    sub = track(rig.Subscriber(good))
    dongle.wait_log("destination T connected", timeout=20)
    failures = len(dongle.lines("destination T failed:"))
    stats = wait_stats(sub, "T/stats")["destination"]
    assert (stats["failures"], stats["connects"]) == (failures, 1), stats
    assert failures >= 4
    assert clients_on(good, good.tls_port) == ["hanport-test-0"]
    print(f"{fault}: {failures} attempts refused, {tries} TLS connections, none plaintext")


def test_the_refusal_reason_is_one_log_line_and_reaches_the_stats(parts):
    tmp, track = parts
    ca = rig.make_ca(tmp)
    bad = server_cert(ca, tmp / "bad", BOTH, "20200101000000Z", "20200102000000Z")
    b = track(rig.tls_broker(tmp, "tls", bad, {USER: PASSWORD}).start())
    shutil.copy(ca / "ca.pem", tmp / "ca.pem")
    meter = track(Server(power_stream()).start())
    t = {"port": b.tls_port, "tls": {"ca": "ca.pem"}, "user": USER, "password": PASSWORD}
    cfg = rig.config(rig.destination("T", b, retry_min=1, retry_max=2, **t))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    failed = dongle.wait_lines("destination T failed:", 2, timeout=30)
    b.stop()
    good = track(rig.tls_broker(tmp, "good", ca, {USER: PASSWORD}, b.port, b.tls_port).start())
    sub = track(rig.Subscriber(good))
    dongle.wait_log("destination T connected", timeout=20)
    stats = wait_stats(sub, "T/stats")["destination"]
    assert all(line.endswith("validity has expired") for _, line in failed), failed
    assert stats["last_error"] and "expired" in stats["last_error"], stats
