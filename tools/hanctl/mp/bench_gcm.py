"""What a ciphered List 3 push costs the dongle (issue 15): security.Context.open(), the
DLMS unwrapping and AES-128-GCM decryption with its tag check, beside decoding the same
push in clear.

Run on the host: `.venv/bin/python tools/hanctl/mp/bench_gcm.py [rounds]`. It ciphers the
List 3 frames of hanctl's encoder with PyPI `cryptography` (general-glo-ciphering, SC 0x30
with an auth key and SC 0x20 without a tag, random keys), runs this file under MicroPython
(the image hanctl picks, at its device-sized heap), and prints a table and the .mpy bytes of
gcm.py and security.py (mpy-cross -O3, as shipped).

Under MicroPython, stdin holds one line per case: "<label> <sc> <key> <auth key or -> <clear
frame> <its APDU start> <end> <ciphered APDU>", hex; stdout one JSON line per case.
"""

import gc
import json
import sys

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    from time import perf_counter_ns

    def ticks_us():
        return perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b


def best_us(fn, rounds):
    fn()  # warm up: first-call costs are not per-frame costs
    best = None
    for _ in range(5):
        gc.collect()
        t0 = ticks_us()
        for _ in range(rounds):
            fn()
        us = ticks_diff(ticks_us(), t0) / rounds
        best = us if best is None or us < best else best
    return best


def heap_of(fn):
    if not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    fn()
    after = gc.mem_alloc()
    gc.enable()
    return after - before


def run_case(line, rounds):
    import security
    from decoder import Decoder

    label, sc, key, ak, clear, start, end, apdu = line.split(" ")
    clear = bytes.fromhex(clear)
    start = int(start)
    end = int(end)
    apdu = bytearray(bytes.fromhex(apdu))
    got = [0]

    def on_reading(reading):
        got[0] += 1

    decoder = Decoder(on_reading)
    us_clear = best_us(lambda: decoder.feed(clear), rounds)
    if not got[0]:
        raise RuntimeError("%s: the clear frame gave no reading" % label)
    gc.collect()
    before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    ctx = security.Context(bytes.fromhex(key), None if ak == "-" else bytes.fromhex(ak))
    kept = gc.mem_alloc() - before if hasattr(gc, "mem_alloc") else None
    out = bytearray(len(apdu))  # apdu keeps its ciphertext: every round decrypts it again
    n = len(apdu)
    kind = ctx.open(apdu, 0, n, out)
    if kind is not None or out[ctx.start : ctx.end] != clear[start:end]:
        raise RuntimeError("%s: open() said %s or gave another plaintext" % (label, kind))
    us_open = best_us(lambda: ctx.open(apdu, 0, n, out), rounds)
    row = {
        "label": label,
        "sc": sc,
        "apdu_bytes": n,
        "us_clear": us_clear,
        "us_open": us_open,
        "ratio": (us_clear + us_open) / us_clear,
        "heap_open": heap_of(lambda: ctx.open(apdu, 0, n, out)),
        "heap_context": kept,
    }
    print(json.dumps(row))


def device_main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for line in sys.stdin:
        line = line.strip()
        if line:
            run_case(line, rounds)


# -- host side ----------------------------------------------------------------------------


def cases():
    """Lines for device_main(): each List 3 frame of hanctl's encoder, its APDU ciphered."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from hanctl import encoder

    lines = []
    for name, make in encoder.METERS.items():
        frame = make(3)
        start = frame.index(encoder.LLC) + len(encoder.LLC)
        end = len(frame) - 3  # FCS and the closing flag
        plain = frame[start:end]
        for sc in (0x30, 0x20):
            key, ak = os.urandom(16), os.urandom(16)
            # A counter below 2**30, as meters' are: a small int on the dongle.
            title, ic = b"KAM\x01\x02\x03\x04\x05", b"\x00" + os.urandom(3)
            aad = bytes([sc]) + ak if sc & 0x10 else None
            sealed = AESGCM(key).encrypt(title + ic, plain, aad)
            body = sealed if sc & 0x10 else sealed[:-16]
            if sc & 0x10:
                body = body[:-16] + body[-16:-4]  # DLMS sends the first 12 bytes of the tag
            content = bytes([sc]) + ic + body
            apdu = b"\xdb\x08" + title + encoder.length(len(content)) + content
            fields = [f"{name}_list3", f"{sc:02x}", key.hex(), ak.hex() if aad else "-"]
            fields += [frame.hex(), str(start), str(end), apdu.hex()]
            lines.append(" ".join(fields))
    return lines


def mpy_bytes(names):
    import subprocess
    import tempfile
    from pathlib import Path

    from hanctl import runtime

    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            src = runtime.firmware_dir() / f"{name}.py"
            out = Path(tmp) / f"{name}.mpy"
            cmd = [runtime.mpy_cross_exe(), "-O3", "-o", str(out), "-s", src.name, str(src)]
            subprocess.run(cmd, check=True)
            sizes[name] = out.stat().st_size
    return sizes


def host_main():
    import subprocess

    from hanctl import runtime

    rounds = sys.argv[1] if len(sys.argv) > 1 else "50"
    exe = runtime.micropython_exe()
    proc = subprocess.run(
        runtime.micropython_argv(__file__, exe=exe) + [rounds],
        input="\n".join(cases()) + "\n",
        capture_output=True,
        text=True,
        env=runtime.micropython_env(),
        check=False,
    )
    if proc.returncode:
        sys.exit(proc.stderr)
    print(f"- {runtime.describe_image(exe)}, -X heapsize={runtime.default_heap(exe)}")
    print(
        "| List 3 frame | SC | APDU B | decode clear µs | open() µs | (decode+open)/decode "
        "| heap B per open() | Context heap B |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in map(json.loads, proc.stdout.splitlines()):
        print(
            f"| {row['label']} | {row['sc']} | {row['apdu_bytes']} | {row['us_clear']:.0f} "
            f"| {row['us_open']:.0f} | {row['ratio']:.2f} | {row['heap_open']} "
            f"| {row['heap_context']} |"
        )
    sizes = mpy_bytes(("gcm", "security"))
    total = sum(sizes.values())
    print(f"\n.mpy bytes (-O3): gcm {sizes['gcm']}, security {sizes['security']}, total {total}")


if sys.implementation.name == "micropython":
    device_main()
elif __name__ == "__main__":
    host_main()
