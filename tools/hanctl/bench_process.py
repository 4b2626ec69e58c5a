"""`hanctl bench --whole-process`: bytes in, canonical JSON out, one process against one.

What an owner runs, timed from start to exit: `hanctl decode CAPTURE --heap 96K` (the
default runtime: the firmware's .mpy under the MicroPython unix interpreter hanctl picks,
runtime.micropython_exe()) against one CPython process running amshan 2.1.1's HDLC reader
and AutoDecoder with json.dumps of each decoded dict. Both read the same raw capture (the
Norwegian frames of `hanctl bench`, repeated) from a file and write one JSON line per
frame to a file. Wall time is the best of a few runs; CPU time (user + system of the
process and its children, from getrusage) is the same runs' least, steadier than wall time
on a shared machine.
"""

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import runtime

HEAP = "96K"
TARGET = 5.0  # the target: >= 5x amshan's frames per second over the whole process
GOAL = 10.0

# The amshan side, as a user of it would write the loop: read the capture, frame it, decode
# each frame, print its dict as JSON (datetimes as str, the usual default).
AMSHAN = """
import json, sys
from han import autodecoder, hdlc
decoder = autodecoder.AutoDecoder()
reader = hdlc.HdlcFrameReader(False)
read = sys.stdin.buffer.read
while True:
    chunk = read(4096)
    if not chunk:
        break
    for frame in reader.read(chunk):
        decoded = decoder.decode_message(frame)
        if decoded is not None:
            print(json.dumps(decoded, default=str))
"""


def has_amshan():
    proc = subprocess.run([sys.executable, "-c", "import han.autodecoder"], capture_output=True)
    return proc.returncode == 0


def measure(argv, capture, out_path, runs):
    """(best wall s, least CPU s, lines) of `runs` runs of argv reading capture on stdin."""
    wall = cpu = None
    lines = 0
    for _ in range(runs):
        with open(capture, "rb") as stdin, open(out_path, "wb") as stdout:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, stdin=stdin, stdout=stdout, check=True)
            t = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        c = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        wall = t if wall is None else min(wall, t)
        cpu = c if cpu is None else min(cpu, c)
        with open(out_path, "rb") as f:
            lines = sum(1 for _ in f)
    return wall, cpu, lines


def report(frames, repeat=100, runs=3):
    """Markdown table of both processes over `frames` ([(label, bytes)]) x `repeat`."""
    n = len(frames) * repeat
    head = [
        "# hanctl bench --whole-process",
        "",
        f"- {len(frames)} frames x {repeat} = {n} frames in one raw capture "
        f"({sum(len(f) for _, f in frames) * repeat} bytes); best of {runs} runs",
        f"- hanctl decode: {runtime.describe_image()}, -X heapsize={HEAP}",
    ]
    if not has_amshan():
        return "\n".join(head + ["", "Not run: amshan is not installed (pip install amshan)."])
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "capture.bin"
        capture.write_bytes(b"".join(data for _, data in frames) * repeat)
        out = Path(tmp) / "out.jsonl"
        decode_argv = [sys.executable, "-m", "hanctl", "decode", "--heap", HEAP, "-"]
        runtime.compile_firmware()  # the .mpy exist before the first timed run
        ours = measure(decode_argv, capture, out, runs)
        theirs = measure([sys.executable, "-c", AMSHAN], capture, out, runs)
    us = [(x[0] * 1e6 / n, x[1] * 1e6 / n) for x in (ours, theirs)]
    lines = [
        "",
        "| one process | µs/frame (wall) | CPU µs/frame | JSON lines |",
        "|---|---|---|---|",
        f"| `hanctl decode` (MicroPython) | {us[0][0]:.0f} | {us[0][1]:.0f} | {ours[2]} |",
        f"| amshan 2.1.1 + json.dumps (CPython {sys.version.split()[0]}) "
        f"| {us[1][0]:.0f} | {us[1][1]:.0f} | {theirs[2]} |",
        "",
        f"`hanctl decode` turns {us[1][0] / us[0][0]:.1f}x the frames per second into JSON that "
        f"amshan does ({us[1][1] / us[0][1]:.1f}x by CPU time; target >= {TARGET:.0f}x, "
        f"goal {GOAL:.0f}x).",
    ]
    return "\n".join(head + lines)
