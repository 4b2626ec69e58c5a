"""`hanctl bench`: the decoder's speed, heap and size, next to amshan 2.1.1, in one run.

On the same Norwegian frames (every plaintext Aidon, Kaifa and Kamstrup frame with an
oracle value in the shared vectors, or frames of our encoder when they are absent):
  - microseconds per frame: firmware decoder under MicroPython (unix port, -X heapsize=96K,
    the shipped -O3 bytecode) and under CPython, amshan under CPython;
  - heap bytes one decode allocates under MicroPython, by list type;
  - .mpy bytes of the decoder as shipped, by module.
Prints a Markdown report (docs/performance.md's benchmark table comes from it).
"""

import gc
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from . import bench_cipher, bench_hostile, bench_pipeline, bench_process, encoder, runtime

SCRIPT = runtime.MP_DIR / "bench_decode.py"
# What a Nordic HAN dongle loads to decode; the rest is loaded on first use or is output.
CORE = (
    "crc16",
    "framing",
    "link",
    "dlms",
    "axdr",
    "errors",
    "obis",
    "normalize",
    "decoder",
)
QUIRKS = ("kaifa", "kamstrup", "iskraemeco")  # a dongle loads its own meter's, on its first frame
ON_DEMAND = ("p1", "objlist", "gbt")  # imported by the decoder when such a frame first arrives
OUTPUT = ("reading",)  # the canonical JSON, shared with the MQTT publisher
TARGETS = {"speedup": 5.0, "heap_list3": 2048, "core_mpy": 12 * 1024}


def register(subparsers):
    parser = subparsers.add_parser(
        "bench", help="measure decoder speed, heap and size against amshan 2.1.1"
    )
    parser.add_argument("--rounds", type=int, default=50, help="decodes per timing round")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="also measure the whole dongle, UART to broker (bench_pipeline.py, ~40 s)",
    )
    parser.add_argument(
        "--heap",
        help="MicroPython heap of the pipeline run (default: 96K on a 32-bit image, twice that "
        "on the stock 64-bit interpreter)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="the pipeline over TLS, with a CA openssl makes for the run (implies --pipeline)",
    )
    parser.add_argument(
        "--destinations",
        type=int,
        default=1,
        help="the pipeline with N destinations: the measured one and N-1 plain ones beside it",
    )
    parser.add_argument(
        "--discovery",
        action="store_true",
        help="the measured destination with Home Assistant discovery on",
    )
    parser.add_argument(
        "--tariff",
        action="store_true",
        help='the pipeline with a "tariff" in the config: the capacity tariff\'s account '
        "loaded and its message sent",
    )
    parser.add_argument(
        "--registers",
        action="store_true",
        help="every 20th frame an Aidon List 3, an hour after the last (as --tariff, "
        "without a tariff): what a dongle does at each hour's register",
    )
    parser.add_argument(
        "--ciphered",
        action="store_true",
        help="the pipeline with a meter that encrypts (AES-128-GCM, security 0x30), the "
        "dongle given its keys",
    )
    parser.add_argument(
        "--local-api",
        action="store_true",
        help="the pipeline with HomeWizard's local API on (share full) and a client reading "
        "/api/v1/data twice a second all along",
    )
    parser.add_argument(
        "--page",
        action="store_true",
        help="the pipeline with the owner's page on (a password set) and a logged-in client "
        "reading /page/live twice a second all along, and a second one holding /page/stream",
    )
    parser.add_argument(
        "--no-stream",
        action="store_true",
        help="with --page: no client holds /page/stream (what the page costs without it)",
    )
    parser.add_argument(
        "--page-clients",
        type=int,
        metavar="N",
        help="--page with N page clients at once (implies --page): each other one reads "
        "/page/live logged in, the rest the page's file; latency and lost frames show what "
        "they cost the meter",
    )
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="also time one `hanctl decode` process against one amshan + json.dumps process "
        "over the same capture (bench_process.py), and `hanctl decode --key` against "
        "dlms-cosem over ciphered pushes (bench_cipher.py, --repeat x 10 times each)",
    )
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="also time the frame assembler on 2-8 KB blocks of hostile bytes, each before a "
        "real frame (bench_hostile.py)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="--hostile: also count each stream's instructions a byte with valgrind's "
        "callgrind, against what a real frame costs the whole decoder (~3 minutes)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=100,
        help="--whole-process: the frames repeated this many times (default %(default)s)",
    )
    parser.set_defaults(run=run_command)


def norwegian_frames():
    """[(label, bytes)] of the Norwegian plaintext frames with an oracle value."""
    from .demo import vectors_dir

    root = vectors_dir()
    frames = []
    for path in sorted((root / "hdlc").glob("*_no_*.json")):
        for i, frame in enumerate(json.loads(path.read_text())["frames"]):
            if frame.get("expected") and not frame.get("corrupt"):
                frames.append((f"{path.stem}#{i}", bytes.fromhex(frame["hex"])))
    if frames:
        return frames, f"{len(frames)} Norwegian frames from {root}"
    sample = encoder.sample_frames()
    return sample, f"{len(sample)} frames of hanctl's own encoder ({root} not found)"


def run_firmware(frames, rounds, which):
    lines = "".join(f"{label} {data.hex()}\n" for label, data in frames)
    if which == "micropython":
        proc = subprocess.run(
            runtime.micropython_argv(SCRIPT, "96K") + [str(rounds)],
            input=lines,
            capture_output=True,
            text=True,
            env=runtime.micropython_env(),
            check=True,
        )
        out = proc.stdout
    else:
        runtime.use_firmware_in_cpython()
        spec = importlib.util.spec_from_file_location("hanctl_mp_bench_decode", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        stdin, stdout, argv = sys.stdin, sys.stdout, sys.argv
        import io

        sys.stdin, sys.stdout, sys.argv = (
            io.StringIO(lines),
            io.StringIO(),
            [str(SCRIPT), str(rounds)],
        )
        try:
            spec.loader.exec_module(module)
            out = sys.stdout.getvalue()
        finally:
            sys.stdin, sys.stdout, sys.argv = stdin, stdout, argv
    return {r["label"]: r for r in map(json.loads, out.splitlines())}


def run_amshan(frames, rounds):
    try:
        from han import autodecoder, hdlc
    except ImportError:
        return None
    decoder = autodecoder.AutoDecoder()
    out = {}
    for label, data in frames:
        best = None
        for _ in range(5):
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(rounds):
                reader = hdlc.HdlcFrameReader(False)
                for frame in reader.read(data):
                    decoder.decode_message(frame)
            us = (time.perf_counter() - t0) * 1e6 / rounds
            best = us if best is None else min(best, us)
        out[label] = best
    return out


def mpy_sizes():
    with tempfile.TemporaryDirectory() as tmp:
        shipped = {p.stem: p.stat().st_size for p in runtime.compile_firmware(tmp, 3).glob("*.mpy")}
    with tempfile.TemporaryDirectory() as tmp:
        debug = {p.stem: p.stat().st_size for p in runtime.compile_firmware(tmp, 0).glob("*.mpy")}
    return shipped, debug


def report(frames, source, rounds):
    mp = run_firmware(frames, rounds, "micropython")
    cp = run_firmware(frames, rounds, "cpython")
    ams = run_amshan(frames, rounds)
    shipped, debug = mpy_sizes()
    lines = [
        "# hanctl bench",
        "",
        f"- frames: {source}; {rounds} decodes per round, best of 5 rounds",
        f"- MicroPython: {runtime.micropython_version()} (unix port, -X heapsize=96K, -O3 .mpy)",
        f"- CPython: {platform.python_version()}; machine: {platform.machine()}, "
        f"{platform.processor() or 'unknown CPU'}",
        "",
        "| list | frames | MicroPython µs/frame | CPython µs/frame | amshan µs/frame "
        "| MicroPython heap B/frame (max) |",
        "|---|---|---|---|---|---|",
    ]
    groups = {}
    for label, _ in frames:
        groups.setdefault(mp[label]["list"], []).append(label)
    for name in sorted(groups):
        labels = groups[name]
        lines.append(
            f"| {name} | {len(labels)} | {_mean(mp, labels, 'us'):.0f} "
            f"| {_mean(cp, labels, 'us'):.0f} | "
            + (f"{statistics.mean(ams[x] for x in labels):.0f}" if ams else "n/a")
            + f" | {max(mp[x]['heap'] for x in labels)} |"
        )
    every = [label for label, _ in frames]
    mp_total = sum(mp[x]["us"] for x in every)
    cp_total = sum(cp[x]["us"] for x in every)
    lines += [
        "",
        f"All {len(every)} frames once: MicroPython {mp_total / 1000:.1f} ms, "
        f"CPython {cp_total / 1000:.1f} ms"
        + (f", amshan {sum(ams.values()) / 1000:.1f} ms" if ams else ", amshan not installed")
        + ".",
    ]
    if ams:
        speedup = sum(ams.values()) / mp_total
        lines.append(
            f"MicroPython decodes {speedup:.1f}x the frames per second amshan does on CPython "
            f"(target >= {TARGETS['speedup']:.0f}x)."
        )
    heap3 = max((mp[x]["heap"] for x in every if mp[x]["list"].endswith("list3")), default=0)
    lines.append(
        f"Heap per List 3 frame under MicroPython: at most {heap3} B "
        f"(target <= {TARGETS['heap_list3']} B)."
    )
    core = sum(shipped[m] for m in CORE)
    quirks = [m for m in QUIRKS if m in shipped]  # HANPORT_FIRMWARE: an older tree has fewer
    quirk = max(shipped[m] for m in quirks)
    lines += [
        "",
        "| .mpy bytes | shipped (-O3) | with line numbers (-O0) |",
        "|---|---|---|",
        f"| decoder core ({', '.join(CORE)}) | {core} | {sum(debug[m] for m in CORE)} |",
    ]
    for m in ON_DEMAND + OUTPUT:
        lines.append(
            f"| {m} ({'on first use' if m in ON_DEMAND else 'output'}) "
            f"| {shipped[m]} | {debug[m]} |"
        )
    lines.append(f"| all firmware | {sum(shipped.values())} | {sum(debug.values())} |")
    for m in quirks:
        lines.append(f"| {m} (quirk, on first use) | {shipped[m]} | {debug[m]} |")
    lines.append("")
    lines.append(
        f"Decoder as a HAN dongle loads it (core + its meter's quirk module, the larger "
        f"one counted): {(core + quirk) / 1024:.2f} KiB (target <= 12 KiB)."
    )
    return "\n".join(lines)


def _mean(results, labels, key):
    return statistics.mean(results[x][key] for x in labels)


def run_command(args):
    frames, source = norwegian_frames()
    print(report(frames, source, args.rounds))
    if args.hostile:
        print(flush=True)
        print(bench_hostile.report(frames[0][1], args.instructions))
    if args.whole_process:
        print(flush=True)
        print(bench_process.report(frames, args.repeat))
        print(flush=True)
        print(bench_cipher.report(args.repeat * 10))
    shaped = args.destinations > 1 or args.discovery or args.ciphered or args.local_api
    shaped = shaped or args.page or args.page_clients
    if args.pipeline or args.tls or shaped or args.tariff or args.registers:
        print(flush=True)  # the decoder's report shows while the pipeline runs
        heap = runtime.check_heap(args.heap) if args.heap else None
        shape = {"destinations": args.destinations, "discovery": args.discovery}
        shape["ciphered"] = args.ciphered
        shape["local_api"] = args.local_api
        shape["tariff"] = args.tariff
        shape["page"] = args.page_clients or args.page  # True: one client
        shape["registers"] = args.registers
        shape["stream"] = not args.no_stream
        print(bench_pipeline.report(heap=heap, tls=args.tls, **shape))
    return 0
