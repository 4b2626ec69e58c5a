"""What a ciphered List 3 push costs the dongle: security.Context.open(), the
DLMS unwrapping and AES-128-GCM decryption with its tag check, beside decoding the same
push in clear.

Run on the host: `.venv/bin/python tools/hanctl/mp/bench_gcm.py [rounds] [--instructions]`.
It ciphers the List 3 frames of hanctl's encoder with PyPI `cryptography` (general-glo-
ciphering, SC 0x30 with an auth key and SC 0x20 without a tag, random keys), runs this file
under MicroPython (the image hanctl picks, at its device-sized heap), and prints a table
and the .mpy bytes of gcm.py and security.py (mpy-cross -O3, as shipped), and of
gcm_native.py for the host model and an ESP32 (xtensawin). --bytecode runs gcm's bytecode
instead of gcm_native's machine code, as where that does not load. Wall time here
varies by tens of percent with the machine's load; --instructions adds the x86
instructions per frame that valgrind's callgrind counts (a run of 20 frames minus a run of
none), which do not.

Under MicroPython, stdin holds one line per case: "<label> <sc> <key> <auth key or -> <clear
frame> <its APDU start> <end> <ciphered APDU>", hex; stdout one JSON line per case. With the
arguments "count decode|open <n>" it only decodes, or opens, each case n times.
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
    gc.collect()
    before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    ctx = security.Context(bytes.fromhex(key), None if ak == "-" else bytes.fromhex(ak))
    gc.collect()  # what the context keeps, not the garbage of making its tables
    kept = gc.mem_alloc() - before if hasattr(gc, "mem_alloc") else None
    # Decoding timed with the keys' tables in the heap too, as a dongle reading this meter
    # holds them: a collection's cost grows with what is live.
    us_clear = best_us(lambda: decoder.feed(clear), rounds)
    if not got[0]:
        raise RuntimeError("%s: the clear frame gave no reading" % label)
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


def count_case(line, what, n):
    import security
    from decoder import Decoder

    label, sc, key, ak, clear, start, end, apdu = line.split(" ")
    # Both runs hold what a dongle reading this meter holds: the decoder and the keys.
    frame = bytes.fromhex(clear)
    decoder = Decoder(lambda reading: None)
    apdu = bytearray(bytes.fromhex(apdu))
    ctx = security.Context(bytes.fromhex(key), None if ak == "-" else bytes.fromhex(ak))
    out = bytearray(len(apdu))
    decoder.feed(frame)  # first-use costs (a quirk module's import) are not per frame
    ctx.open(apdu, 0, len(apdu), out)
    for _ in range(n):
        if what == "decode":
            decoder.feed(frame)
        else:
            ctx.open(apdu, 0, len(apdu), out)


def device_main():
    if "bytecode" in sys.argv:  # gcm's bytecode, as where gcm_native does not load
        import gcm

        gcm.gcm_native = None
        sys.argv.remove("bytecode")
    if len(sys.argv) > 1 and sys.argv[1] == "count":
        for line in sys.stdin:
            if line.strip():
                count_case(line.strip(), sys.argv[2], int(sys.argv[3]))
        return
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


BYTECODE = []  # ["bytecode"] with --bytecode


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
            if name.startswith("gcm_native"):  # gcm_native-<march>
                src = runtime.firmware_dir() / "gcm_native.py"
                cmd[-1:] = [f"-march={name.split('-')[1]}", str(src)]
            subprocess.run(cmd, check=True)
            sizes[name] = out.stat().st_size
    return sizes


def instructions(exe, line, what, n):
    """x86 instructions callgrind counts for the MicroPython run of `count what n`."""
    import re
    import subprocess

    from hanctl import runtime

    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    argv += runtime.micropython_argv(__file__, exe=exe) + ["count", what, str(n)] + BYTECODE
    proc = subprocess.run(
        argv, input=line + "\n", capture_output=True, text=True, env=runtime.micropython_env()
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or not found:
        sys.exit(proc.stderr[-2000:])
    return int(found.group(1))


def per_frame(exe, line, what, n=20):
    return (instructions(exe, line, what, n) - instructions(exe, line, what, 0)) / n


def host_main():
    import shutil
    import subprocess

    from hanctl import runtime

    args = [a for a in sys.argv[1:] if a not in ("--instructions", "--bytecode")]
    counted = "--instructions" in sys.argv
    if "--bytecode" in sys.argv:
        BYTECODE.append("bytecode")
    if counted and not shutil.which("valgrind"):
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    rounds = args[0] if args else "50"
    exe = runtime.micropython_exe()
    lines = cases()
    proc = subprocess.run(
        runtime.micropython_argv(__file__, exe=exe) + [rounds] + BYTECODE,
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=runtime.micropython_env(),
        check=False,
    )
    if proc.returncode:
        sys.exit(proc.stderr)
    print(f"- {runtime.describe_image(exe)}, -X heapsize={runtime.default_heap(exe)}")
    how = "bytecode (--bytecode)" if BYTECODE else f"gcm_native (-march={runtime.host_march()})"
    print(f"- GHASH and counter mode: {how}")
    head = "| List 3 frame | SC | APDU B | decode clear µs | open() µs | (decode+open)/decode "
    rule = "|---|---|---|---|---|---|"
    if counted:
        head += "| decode k instr. | open() k instr. | (decode+open)/decode, instr. "
        rule += "---|---|---|"
    print(head + "| heap B per open() | Context heap B |")
    print(rule + "---|---|")
    for line, row in zip(lines, map(json.loads, proc.stdout.splitlines()), strict=True):
        cells = [row["label"], row["sc"], row["apdu_bytes"], f"{row['us_clear']:.0f}"]
        cells += [f"{row['us_open']:.0f}", f"{row['ratio']:.2f}"]
        if counted:
            decode, opened = per_frame(exe, line, "decode"), per_frame(exe, line, "open")
            cells += [f"{decode / 1000:.0f}", f"{opened / 1000:.0f}"]
            cells.append(f"{(decode + opened) / decode:.2f}")
        cells += [row["heap_open"], row["heap_context"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    host = "gcm_native-" + runtime.host_march()
    sizes = mpy_bytes(("gcm", "security", host, "gcm_native-xtensawin"))
    total = sizes["gcm"] + sizes["security"]
    print(f"\n.mpy bytes (-O3): gcm {sizes['gcm']}, security {sizes['security']}, total {total};")
    print(f"gcm_native {sizes[host]} ({host[11:]}), {sizes['gcm_native-xtensawin']} (xtensawin)")


if sys.implementation.name == "micropython":
    device_main()
elif __name__ == "__main__":
    host_main()
