"""`hanctl bench --hostile`: what hostile bytes cost the frame assembler.

Each stream is 2 KB (8 KB where candidates overlap long) of bytes that look like frame
starts, then one real frame; it goes through framing.Assembler under MicroPython (the
default image, -O3 .mpy) in 256-byte chunks, then idle(). Prints µs per byte (best of 3),
the slowest single feed()/idle() call, the assembler's work counter per byte (bytes of
every candidate it examined, what host_tests/stress/fuzz/check.py bounds) and whether the real frame
after the block came out; with --instructions, callgrind's count a byte too.
"""

import json
import random
import re
import shutil
import struct
import subprocess

from . import encoder, runtime

SCRIPT = runtime.MP_DIR / "bench_framing.py"


def _header(length, fields=b"\x41\x08\x83\x13"):
    """An HDLC header (flag to HCS) whose length field says `length` (the frame is 2 bytes
    more, with its flags), its HCS valid; after the format field come `fields`."""
    head = struct.pack(">H", 0xA000 | length) + fields
    return b"\x7e" + head + struct.pack("<H", encoder.crc16_x25(head))


def streams(real):
    """[(label, what, bytes)]: a hostile block then `real` (one whole frame)."""
    rng = random.Random(12)
    spaced = _header(2000)  # 19 bytes apart, each claiming 2000
    spaced += bytes(19 - len(spaced))
    flagged = _header(19 * 105 - 1)  # each one's last byte is the next one's flag
    flagged += bytes(19 - len(flagged))
    crafted = _header(19 * 50 - 1)  # each one's last byte is the flag 50 headers on
    crafted += bytes(19 - len(crafted))
    dense = _header(2039, b"\x41\x03\x13") * 1024  # 8 bytes apart, each ending on a flag
    short = b"\xa0\x07\x03\x21\x13"  # no information field: 7E, this, FCS, 7E
    framed = _header(1919, b"\x41\x03\x13") + b"\x7e" + short
    framed += struct.pack("<H", encoder.crc16_x25(short))
    glo = b"\xdb\x08SAG\x00\x00\x00\x00\x01\x82\x07\xd0\x30\x00\x00\x00\x01"  # 18 bytes
    out = [
        ("7ea7", "`7ea7` repeated", b"\x7e\xa7" * 1024),
        ("7ea7f0", "`7ea7f0` repeated", b"\x7e\xa7\xf0" * 683),
        ("slash_Ah", '`"/Ah"` x 680 then `0x80`', b"/Ah" * 680 + b"\x80"),
        ("hcs19", "HDLC headers with a valid HCS every 19 bytes", spaced * 108),
        ("hcs19_flag", "the same, each ending on the next one's flag", flagged * 108),
        ("hcs19_fcs", "the same, each 951 bytes long and ending on a flag", crafted * 108),
        ("68ffff68", "`68ffff68` repeated", b"\x68\xff\xff\x68" * 512),
        ("slashes", "`/` x 2048", b"/" * 2048),
        ("p1_nested", '`"x/ABC5"` x 340 then `"\\r\\n!0000\\r\\n"`', b"x/ABC5" * 340),
        (
            "p1_lines",
            '`"x/ABC5\\r\\n"` x 250 then `"!0000\\r\\n"`',
            b"x/ABC5\r\n" * 250 + b"!0000\r\n",
        ),
        ("flags", "`7e` x 2048", b"\x7e" * 2048),
        ("random", "2 KB of random bytes", bytes(rng.randrange(256) for _ in range(2048))),
        # Candidates that overlap long: each checksum runs from marks (firmware/marks.py).
        # 8 KB, as a 2 KB candidate in a 2 KB block never ends.
        ("hcs8_fcs", "HDLC headers 8 bytes apart, each 2,041 bytes long (8 KB)", dense),
        ("mbus5_sum", "`68fefe6816` repeated (8 KB)", b"\x68\xfe\xfe\x68\x16" * 1640),
        # The densest found: a header every 4 bytes (7E A5 FF | 8D 7E A5 FF 8D: format,
        # length 1,535, destination 8D, source 7E A5, control FF, HCS 8D 7E), each frame
        # 1,537 bytes long and ending on a flag. No period of 3 has a valid HCS.
        (
            "hcs4_fcs",
            "`7ea5ff8d` repeated: the same, 4 bytes apart (8 KB)",
            b"\x7e\xa5\xff\x8d" * 2048,
        ),
        # Two lengths, 477 and 1,537 bytes, headers 4 bytes apart (7E A1 DB | CB 7E A5 FF 8D
        # and 7E A5 FF | 8D 7E A1 DB CB: each one's HCS is in the other's header), found by
        # a search of every period up to 8: each candidate needs the other length's product
        # by the shift, so one cached shift missed every time (5.2x); marks.py keeps 4. A
        # third length would need a period of 12, which the search did not reach.
        (
            "hcs4_two",
            "`7ea1dbcb7ea5ff8d` repeated: the same, of two lengths (8 KB)",
            b"\x7e\xa1\xdb\xcb\x7e\xa5\xff\x8d" * 1024,
        ),
        # Luxembourg's ciphered P1 frames (framing.Assembler.apdu): 0xDB opens a candidate
        # only before 08, and only a whole ciphered telegram's header holds one open.
        ("db", "`db` x 2048", b"\xdb" * 2048),
        ("db08", "`db08` repeated", b"\xdb\x08" * 1024),
        ("glo18", "ciphered P1 headers every 18 bytes, each claiming 2 KB", glo * 114),
        # Found by review: a good 9-byte frame between headers 16 bytes apart, each 1,921
        # bytes long, was handed over with the bytes held across the ring's end, which
        # turned the whole ring (and dropped the marks) every few frames.
        ("hcs16_frames", "the same, 16 bytes apart, a 9-byte frame between (8 KB)", framed * 512),
    ]
    out[8] = out[8][:2] + (out[8][2] + b"\r\n!0000\r\n",)
    return [
        ("real", "real frames only (the reference)", real * 8),
        ("real_decoded", "the same through the whole decoder (what a frame costs)", real * 8),
    ] + [(label, what, block + real) for label, what, block in out]


def run(real):
    rows = streams(real)
    lines = "".join(f"{label} {data.hex()}\n" for label, _, data in rows)
    proc = subprocess.run(
        runtime.micropython_argv(SCRIPT, "256K"),
        input=lines,
        capture_output=True,
        text=True,
        env=runtime.micropython_env(),
        check=True,
    )
    got = {r["label"]: r for r in map(json.loads, proc.stdout.splitlines())}
    return [((label, what), got[label]) for label, what, _ in rows]


def instructions(label, data):
    """x86 instructions a byte that callgrind counts for the stream through the assembler
    (the whole decoder for a label ending in "_decoded"), the harness's own taken off:
    the same on every run, where µs move with the host's load."""
    line = f"{label} {data.hex()}\n"

    def count(mode):
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        argv += runtime.micropython_argv(SCRIPT, "256K") + ["count", mode]
        proc = subprocess.run(
            argv, input=line, capture_output=True, text=True, env=runtime.micropython_env()
        )
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode or not found:
            raise SystemExit(proc.stderr[-2000:])
        return int(found.group(1))

    mode = "dec" if label.endswith("_decoded") else "asm"
    return (count(mode) - count("null")) / len(data)


def report(real, counted=False):
    """The table; with counted, callgrind's instructions a byte and their ratio to what a
    real frame costs the whole decoder (needs valgrind, ~3 minutes)."""
    head = "| stream (then one real frame) | µs/byte | worst call (ms) | work/byte | real frame |"
    lines = [head, "|---|---|---|---|---|"]
    if counted:
        if not shutil.which("valgrind"):
            raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
        lines = [head + " instr./byte | x frame |", "|---|---|---|---|---|---|---|"]
        data_of = {label: data for label, _, data in streams(real)}
        per_frame = instructions("real_decoded", data_of["real_decoded"])
    for (label, what), r in run(real):
        row = (
            f"| {what} | {r['us'] / r['bytes']:.1f} | {r['worst'] / 1000:.2f} "
            f"| {r['work'] / r['bytes']:.1f} | {'yes' if r['frames'] else 'LOST'} |"
        )
        if counted:
            n = instructions(label, data_of[label])
            row += f" {n:,.0f} | {n / per_frame:.1f} |"
        lines.append(row)
    return "\n".join(lines)
