"""Luxembourg's encrypted P1 (firmware/p1cipher.py, framing.Assembler.apdu): the DSMR telegram
inside a bare general-glo-ciphering APDU. The real telegrams of ../shared/vectors and one the
encoder writes, ciphered by hanctl's encoder (PyPI `cryptography`) with random keys as a
Smarty meter sends them, through decoders given the key, with and without the auth key, in
every chunking, on CPython and on the MicroPython unix port at -X heapsize=96K
(gcm_driver.py's `feed`): each reads as its telegram in clear does. No key says
`encrypted`, a wrong key or auth key `decrypt`, a damaged telegram `checksum`, a cut frame
`truncated`; bytes 0xDB in noise cost the assembler no more than other noise."""

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vectors
from hanctl import bench_pipeline, encoder, runtime
from mp import RUNTIMES, gcm_driver, run_driver, run_lines

runtime.use_firmware_in_cpython()
from decoder import Decoder  # noqa: E402  (firmware/, on the path only now)

HANCTL = Path(sys.executable).parent / "hanctl"
LUX_AK = encoder.LUXEMBOURG_AUTH_KEY
CHUNKS = (0, 1, 7, 64, 256)  # 0: the whole stream in one feed()
# The driver at 96K, with its own 3 KB line of hex and the reading's JSON made at 4 KB,
# once decoded the vectors' 1,423-byte Sagemcom telegram (52 fields) in clear but not
# ciphered (2.6 KB free at the reading: gcm, security and p1cipher's code and GCM's tables,
# ~10 KB); now each of the vectors' telegrams, ciphered, at 96K too. Luxembourg's
# telegrams are 600-1,200 bytes (docs/decoder.md).
BIG = 4096

# A telegram as Luxembourg's meters print it (their P1 specification's OBIS codes), made
# here; the vectors' real ones are the Dutch, Belgian, Austrian... of dsmr_parser's examples.
LUX_TELEGRAM = encoder.p1(
    "Lux5\\253663629_D",
    [
        "1-3:0.2.8(42)",
        "0-0:1.0.0(240130102122W)",
        "1-0:1.8.0(006545.766*kWh)",
        "1-0:2.8.0(000000.025*kWh)",
        "1-0:1.7.0(01.193*kW)",
        "1-0:2.7.0(00.000*kW)",
        "1-0:32.7.0(233.1*V)",
        "1-0:31.7.0(005*A)",
    ],
)


def telegrams():
    """[(id, telegram bytes)]: the encoder's, and every good P1 telegram of the vectors."""
    out = [("encoder", LUX_TELEGRAM)]
    if not vectors.missing_reason():
        for case in vectors.load_cases():
            if case.framing == "p1" and not case.frame.get("corrupt"):
                data = b"".join(case.chunks)
                end = data.index(b"\n", data.rindex(b"\n!") + 2) + 1  # not what a capture
                out.append((case.id.replace(" ", "_"), data[:end]))  # holds after its telegram
    return out


def feed(lines, which):
    """{case: [events]} of gcm_driver's `feed` lines under `which`."""
    out = run_lines("gcm_driver", lines, which)
    got = {}
    for text in out:
        case, events = text.split(" ", 1)
        got[case] = [] if events == "-" else events.split("|")
    assert len(got) == len(lines), out[-3:]
    return got


def line(case, key, ak, chunk, stream):
    keys = f"{key.hex() if key else '-'} {ak.hex() if ak else '-'}"
    return f"feed {case} {keys} {chunk} {stream.hex()}"


def clear(telegram):
    """The events of the telegram in clear, without keys (on CPython), but noise: a
    capture's bytes after its telegram."""
    return [e for e in gcm_driver.feed_case(None, None, 0, telegram).split("|") if e != "Enoise"]


@pytest.mark.parametrize("which", RUNTIMES)
def test_ciphered_telegrams_read_as_in_clear_in_any_chunking(which):
    rnd = random.Random(2026)
    lines, want = [], {}
    for i, (name, telegram) in enumerate(telegrams()):
        if which == "micropython" and len(telegram) > BIG:
            continue
        key = rnd.randbytes(16)
        expected = clear(telegram)
        assert expected[-1].startswith("R"), (name, expected)
        frame = encoder.luxembourg(telegram, key, counter=i + 1, title=b"SAG" + rnd.randbytes(5))
        assert frame[10] == 0x82 and frame[13] == 0x30
        for ak in (LUX_AK, None):
            for chunk in CHUNKS[i % 2 :: 2] if which == "micropython" else CHUNKS:
                case = f"{name}-{'ak' if ak else 'noak'}-{chunk}"
                lines.append(line(case, key, ak, chunk, frame))
                want[case] = expected
    got = feed(lines, which)
    for case, expected in want.items():
        assert got[case] == expected, case


@pytest.mark.parametrize("which", RUNTIMES)
def test_wrong_keys_and_damaged_frames_give_their_kind(which):
    rnd = random.Random(352)
    key = rnd.randbytes(16)
    frame = encoder.luxembourg(LUX_TELEGRAM, key, counter=7)
    reading = clear(LUX_TELEGRAM)
    text = 18  # DB 08, title (8), 82 + 2 length bytes, SC, counter (4): the telegram's '/'
    other = rnd.randbytes(16)

    def flipped(at, bit=0x01):
        b = bytearray(frame)
        b[at] ^= bit
        return bytes(b)

    cases = {
        "no-key": (None, None, frame, ["Eencrypted"]),
        "wrong-key": (other, None, frame, ["Edecrypt"]),
        "wrong-key-ak": (other, LUX_AK, frame, ["Edecrypt"]),
        "wrong-auth-key": (key, other, frame, ["Edecrypt"]),
        # Without the auth key the tag is not checked (as ESPHome's dsmr): the telegram's CRC
        # is. A bit of the telegram's text flipped on the line: its '/' still there.
        "text-bit-noak": (key, None, flipped(text + 40, 0x04), ["Echecksum"]),
        "text-bit-ak": (key, LUX_AK, flipped(text + 40, 0x04), ["Edecrypt"]),
        "slash-bit-noak": (key, None, flipped(text), ["Edecrypt"]),
        "title-bit-noak": (key, None, flipped(5), ["Edecrypt"]),
        "counter-bit-ak": (key, LUX_AK, flipped(15), ["Edecrypt"]),
        "tag-bit-noak": (key, None, flipped(len(frame) - 1), reading),
        # A cut frame waits for the bytes its length says, until the stream ends (idle()).
        "cut-tag": (key, LUX_AK, frame[:-1], ["Etruncated"]),
        "cut-half": (key, LUX_AK, frame[: len(frame) // 2], ["Etruncated"]),
        "cut-header": (key, LUX_AK, frame[:12], ["Etruncated"]),
        # The length one short: the frame ends inside the tag, whose last byte is noise.
        "length-short": (key, LUX_AK, frame[:12] + bytes([frame[12] - 1]) + frame[13:], None),
        "sc-0x00": (key, LUX_AK, frame[:13] + b"\x00" + frame[14:], None),
        # Authentication only would carry the telegram in clear: no frame opens on it, nor
        # on a 1-byte length (a telegram is longer), so noise cannot swallow the next frame.
        "sc-0x10": (key, LUX_AK, frame[:13] + b"\x10" + frame[14:], None),
        "short-length": (key, LUX_AK, frame[:10] + b"\x7f" + frame[13:], None),
    }
    for i in range(12):
        tag_bit = flipped(len(frame) - 12 + i, 1 << i % 8)
        cases[f"tag-bit-{i}"] = (key, LUX_AK, tag_bit, ["Edecrypt"])
    lines = []
    for case, (k, ak, stream, _want) in cases.items():
        for chunk in (0, 5):
            lines.append(line(f"{case}-{chunk}", k, ak, chunk, stream))
    got = feed(lines, which)
    for case, (_k, _ak, _stream, want) in cases.items():
        for chunk in (0, 5):
            events = got[f"{case}-{chunk}"]
            if want is not None:
                assert events == want, (case, chunk, events)
            else:
                assert not any(e.startswith("R") for e in events), (case, events)
    assert got["length-short-0"] == ["Edecrypt", "Enoise"]
    for case in ("sc-0x00", "sc-0x10", "short-length"):  # no frame opens: noise
        assert got[f"{case}-0"] == ["Enoise"], case


@pytest.mark.parametrize("which", RUNTIMES)
def test_frames_among_noise_a_cut_frame_and_hdlc_on_one_line(which):
    """A stream as a dongle may read it: noise with 0xDB and `db08` in it, a frame cut by a
    pause (idle), the next frames whole, and the counter that did not grow counted."""
    rnd = random.Random(5)
    key = rnd.randbytes(16)
    frames = [encoder.luxembourg(LUX_TELEGRAM, key, counter=n) for n in (10, 11, 11)]
    noise = bytes(rnd.randrange(256) for _ in range(300)) + b"\xdb\x08\xdb" * 20
    stream = noise + frames[0] + b"\xdb" + noise + frames[1] + frames[2] + b"\xdb\x08"
    reading = clear(LUX_TELEGRAM)[-1]
    lines = [line(f"s{c}", key, None, c, stream) for c in CHUNKS]
    got = feed(lines, which)
    for c in CHUNKS:
        events = [e for e in got[f"s{c}"] if e != "Enoise"]
        assert events == [reading, reading, "Ecounter", reading, "Etruncated"], (c, events)


def test_a_cut_frame_ends_at_the_pause_and_the_next_one_reads():
    key = bytes(range(16))
    a, b = (encoder.luxembourg(LUX_TELEGRAM, key, counter=n) for n in (1, 2))
    events = []
    d = Decoder(lambda r: events.append("R"), lambda k, _d: events.append(k), keys=(key, None))
    d.feed(a[:150])
    d.idle()  # the line paused: bytes were lost
    d.feed(b)
    d.end()
    assert events == ["truncated", "R"]
    assert d.assembler.frames[2] == 1  # counted as a P1 frame: the line search locks on it


def test_no_key_counts_encrypted_and_loads_no_decryption():
    code = (
        "import sys\n"
        "from decoder import Decoder\n"
        "seen = []\n"
        "d = Decoder(seen.append, lambda k, x: seen.append(k))\n"
        f"d.feed(bytes.fromhex('{encoder.luxembourg(LUX_TELEGRAM, bytes(16)).hex()}'))\n"
        "d.end()\n"
        "print(seen, [m for m in ('p1cipher', 'security', 'gcm', 'p1') if m in sys.modules])\n"
    )
    proc = run_driver(code=code, heap="96K")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['encrypted'] []"


def test_hostile_db_bytes_cost_what_other_noise_does():
    """Runs of 0xDB, `db08` and ciphered-APDU headers each claiming 2 KB, 18 bytes apart:
    the assembler's work stays a few bytes read a byte fed, and a frame after them reads."""
    key = bytes(range(16))
    header = b"\xdb\x08" + b"SAG\x00\x00\x00\x00\x01" + b"\x82\x07\xd0" + b"\x30\x00\x00\x00\x01"
    blocks = [b"\xdb" * 2048, b"\xdb\x08" * 1024, (header + bytes(18 - len(header))) * 114]
    for block in blocks:
        events = []
        d = Decoder(events.append, lambda k, _d, seen=events: seen.append(k), keys=(key, None))
        stream = block + encoder.luxembourg(LUX_TELEGRAM, key)
        for i in range(0, len(stream), 256):
            d.feed(stream[i : i + 256])
        d.idle()
        d.feed(encoder.luxembourg(LUX_TELEGRAM, key, counter=2))
        d.end()
        assert d.assembler.work <= 4 * len(stream), (block[:4], d.assembler.work)
        assert sum(isinstance(e, dict) for e in events) >= 1, events


def test_hanctl_decode_reads_a_luxembourg_capture(tmp_path):
    key = bytes(range(0x10, 0x20))
    frames = [encoder.luxembourg(LUX_TELEGRAM, key, counter=n) for n in (1, 2)]
    path = tmp_path / "smarty.hex"
    path.write_text("\n".join(f.hex() for f in frames))
    for runtime_name in ("cpython", "micropython"):
        argv = [HANCTL, "decode", "--runtime", runtime_name, "--errors", "--key", key.hex()]
        proc = subprocess.run(argv + [str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        got = [json.loads(x, parse_float=str) for x in proc.stdout.splitlines()]
        assert [x["active_energy_import"] for x in got] == ["6545.766"] * 2, got
        assert key.hex() not in proc.stdout + proc.stderr
        proc = subprocess.run(
            [HANCTL, "decode", "--runtime", runtime_name, "--errors", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert [json.loads(x).get("error") for x in proc.stdout.splitlines()] == ["encrypted"] * 2


def long_telegram(power):
    """A Luxembourg full read-out of 1,128 bytes (48 lines: the three phases' powers, the
    M-Bus gas meter, the message lines), its active power import `power` W."""
    lines = ["1-3:0.2.8(42)", "0-0:1.0.0(240130102122W)",
             "0-0:42.0.0(53414731303330313233343536373839)",
             "1-0:1.8.0(006545.766*kWh)", "1-0:2.8.0(000000.025*kWh)",
             "1-0:3.8.0(000001.766*kvarh)", "1-0:4.8.0(000512.111*kvarh)",
             f"1-0:1.7.0({power // 1000:02d}.{power % 1000:03d}*kW)", "1-0:2.7.0(00.000*kW)",
             "1-0:3.7.0(00.000*kvar)", "1-0:4.7.0(00.150*kvar)", "0-0:17.0.0(999.9*kVA)",
             "1-0:15.0.0(999.9*kVA)", "0-0:96.3.10(1)", "0-0:96.7.21(00003)", "1-0:99.97.0(0)()",
             "1-0:32.32.0(00001)", "1-0:52.32.0(00001)", "1-0:72.32.0(00001)",
             "1-0:32.36.0(00000)", "1-0:52.36.0(00000)", "1-0:72.36.0(00000)",
             "0-0:96.13.0()", "0-0:96.13.2()", "0-0:96.13.3()", "0-0:96.13.4()", "0-0:96.13.5()",
             "1-0:31.7.0(005*A)", "1-0:51.7.0(002*A)", "1-0:71.7.0(001*A)",
             "1-0:32.7.0(233.1*V)", "1-0:52.7.0(232.4*V)", "1-0:72.7.0(231.9*V)",
             "1-0:21.7.0(00.400*kW)", "1-0:41.7.0(00.500*kW)", "1-0:61.7.0(00.293*kW)",
             "1-0:22.7.0(00.000*kW)", "1-0:42.7.0(00.000*kW)", "1-0:62.7.0(00.000*kW)",
             "1-0:23.7.0(00.000*kvar)", "1-0:43.7.0(00.000*kvar)", "1-0:63.7.0(00.000*kvar)",
             "1-0:24.7.0(00.050*kvar)", "1-0:44.7.0(00.050*kvar)", "1-0:64.7.0(00.050*kvar)",
             "0-1:24.1.0(003)", "0-1:96.1.0(3232323241424344313233343536373839)",
             "0-1:24.2.1(240130102000W)(00123.456*m3)"]  # fmt: skip
    return encoder.p1("Lux5\\253663629_D", lines)


@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)
def test_a_dongle_at_96k_reads_every_long_ciphered_telegram(tmp_path):
    """A dongle of one destination on the owner's image at 96K (`hanctl run`), a
    Luxembourg meter sending 1,128-byte telegrams: each is published, none counted
    `memory` (6 of 8 were, when the telegram's text was one copy of 1.1 KB). The first
    loads p1 and p1cipher (3 KB of code) into the heap, and is lost where that finds no
    room (1 run in 5 here): the 8 after it are the test. It failed in each of 8 runs
    beside two busy loops until the P1 dongle's names fit five qstr pools (docs/
    performance.md, "The names a dongle with discovery holds"); 16 of 16 here since, one
    failure in an early CI run, then 10 of 10 beside the loops with module paths as short
    as a board's (runtime.short_alias)."""
    from hanctl.broker import Mosquitto
    from hanctl.loopback import Dongle, Line, Subscriber

    key = bytes(range(16))
    assert len(long_telegram(1234)) == 1128
    broker = Mosquitto(tmp_path).start()
    parts = [broker]
    try:
        sub = Subscriber(broker.port, bench_pipeline.BASE)
        parts.append(sub)
        line = Line()
        parts.append(line)
        config = bench_pipeline._config(broker.port)
        config["meter"] = {"baud": 115200, "parity": "8N1", "invert": False, "key": key.hex()}
        dongle = Dongle(tmp_path, config, "96K", line.port).start()
        parts.append(dongle)
        assert dongle.wait_log("destination bench connected", 20), "\n".join(dongle.output[-30:])
        assert line.wait_client(10)
        line.send(encoder.luxembourg(long_telegram(999), key, counter=1))
        sub.wait_power(999, 5)
        time.sleep(1.5)  # the stats of every second: the count before
        before = sub.stats[-1][1]["rejected"].get("memory", 0)
        for i in range(8):
            line.send(encoder.luxembourg(long_telegram(1000 + i), key, counter=i + 2))
            assert sub.wait_power(1000 + i, 5), "\n".join(dongle.output[-30:])
            time.sleep(0.3)
        time.sleep(1.5)
        stats = sub.stats[-1][1]
        assert stats["rejected"].get("memory", 0) == before, stats
    finally:
        for part in reversed(parts):
            part.stop()
