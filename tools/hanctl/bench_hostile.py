"""`hanctl bench --hostile`: what hostile bytes cost the frame assembler (issue 12).

Each stream is ~2 KB of bytes that look like frame starts, then one real frame; it goes
through framing.Assembler under MicroPython (the default image, -O3 .mpy) in 256-byte
chunks, then idle(). Prints µs per byte (best of 3), the slowest single feed()/idle()
call, the assembler's work counter per byte (bytes of every candidate it examined, what
tools/fuzz/check.py bounds) and whether the real frame after the block came out.
"""

import json
import random
import struct
import subprocess

from . import encoder, runtime

SCRIPT = runtime.MP_DIR / "bench_framing.py"


def _header(length):
    """An HDLC header (flag to HCS) of a frame of `length` bytes, its HCS valid."""
    head = struct.pack(">H", 0xA000 | length) + b"\x41\x08\x83\x13"
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
    return [(what, got[label]) for label, what, _ in rows]


def report(real):
    lines = [
        "| stream (then one real frame) | µs/byte | worst call (ms) | work/byte | real frame |",
        "|---|---|---|---|---|",
    ]
    for what, r in run(real):
        lines.append(
            f"| {what} | {r['us'] / r['bytes']:.1f} | {r['worst'] / 1000:.2f} "
            f"| {r['work'] / r['bytes']:.1f} | {'yes' if r['frames'] else 'LOST'} |"
        )
    return "\n".join(lines)
