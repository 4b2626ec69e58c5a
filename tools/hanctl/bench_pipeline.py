"""`hanctl bench --pipeline`: the whole dongle, UART to broker, measured in one run.

Real parts on loopback, as host_tests/test_runtime.py uses them: Debian's mosquitto on a
free port, the firmware's real main under `hanctl run` (the MicroPython unix port, the
shipped -O3 .mpy), a meter on its TCP "UART" (simulate.Server), a paho-mqtt subscriber.
  - latency: per frame, from the simulator's sendall of the frame's closing flag (the body
    went 20 ms before, as a line would have carried it) to the subscriber's receipt of that
    frame's <base>/reading; frames are told apart by their active power;
  - heap: the firmware's own stats every second (free_heap, taken after gc.collect());
  - CPU per frame: the `micropython` process's CPU time over frames sent back to back,
    minus its idle CPU (ticker, stats) over the same time;
  - .mpy: every firmware module as shipped (-O3).
With tls=True (`--tls`) the destination is mosquitto's TLS listener, its certificate from a
CA that openssl makes for the run, verified by the dongle (tls.ca), as an owner's would be.
With local_api=True (`--local-api`) the dongle serves HomeWizard's local API (share full) on
`hanctl run --http`, and a client on the host reads /api/v1/data every POLL_S all along:
the heap is then the dongle's with its web server loaded and serving.
With ciphered=True (`--ciphered`) the meter encrypts, as a Danish or Austrian one does:
each frame's APDU ciphered with AES-128-GCM (security 0x30, a 12-byte tag, its invocation
counter one up a frame) under simulate.EXAMPLE_KEYS, which the dongle's config holds.
If the firmware does not run at the heap asked for, the report says why and runs again at
FALLBACK_HEAP. About 30 s with the defaults, and ~8 s more for a heap that fails.
"""

import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from . import encoder, runtime, simulate
from .broker import Mosquitto, free_port, mosquitto_exe
from .certs import make_ca
from .loopback import CpuClock, Dongle, Line, Poller, Subscriber, Watcher

FALLBACK_HEAP = "256K"
TARGETS = {"latency_ms": 20.0, "steady_heap": 48 * 1024}  # pass marks: median; steady state
BASE = "hanport/bench"
METER = {"baud": 2400, "parity": "8E1", "invert": False}  # the Aidon line
KEY, AUTH_KEY = simulate.EXAMPLE_KEYS  # --ciphered
BODY_PAUSE = 0.02  # s between a frame's body and its closing flag (the idle cut is 100 ms)
MESSAGE_WAIT = 1.0  # s to wait for one frame's message before counting it lost
GIVE_UP = 3  # frames lost in a row: the dongle is not working at this heap
PAGE_PASSWORD = "bench password"  # --page: set with config_cmd.page_section, as hanctl does
POLL_S = 0.5  # --local-api: between two reads of /api/v1/data (HomeWizard clients: 1-5 s)
BURSTS = 3  # CPU bursts; the table shows their median


def report(
    heap=None,
    frames=200,
    burst=300,
    gap=0.1,
    idle=2.0,
    tls=False,
    destinations=1,
    discovery=False,
    ciphered=False,
    local_api=False,
    tariff=False,
    page=False,
    registers=False,
    stream=True,
):
    """Markdown report of one pipeline run at `heap` (default: the image's, runtime.
    default_heap; and at FALLBACK_HEAP if that fails): `frames` paced frames for latency,
    `burst` back-to-back frames for CPU, `gap` seconds of quiet after each paced frame's
    message, `idle` seconds of idle CPU measured; the measured destination over TLS if
    `tls`, with Home Assistant discovery if `discovery`, and `destinations` - 1 plain ones
    beside it (each its own session and topic on the same broker); a meter that encrypts
    if `ciphered`; HomeWizard's local API served and read if `local_api`; the config with a
    "tariff" and every 20th frame an Aidon List 3 an hour after the last (the account's code
    loaded for each, its state written) if `tariff`; the owner's page on, a logged-in
    client reading /page/live every POLL_S, if `page` (a number: that many clients at once,
    every other one reading the page's file instead), and one more client holding
    /page/stream unless `stream` is False; every 20th frame a List 3 as with `tariff`,
    without one in the config, if `registers`."""
    missing = _missing_parts(tls)
    if missing:
        return f"# hanctl bench --pipeline\n\nNot run: {missing}."
    heap = heap or runtime.default_heap()
    shape = (tls, destinations, discovery, ciphered, local_api, tariff, page, registers, stream)
    runs = [measure(heap, frames, burst, gap, idle, *shape)]
    if runs[0]["problem"] and _heap_bytes(heap) != _heap_bytes(FALLBACK_HEAP):
        runs.append(measure(FALLBACK_HEAP, frames, burst, gap, idle, *shape))
    text = _markdown(runs, frames, burst, gap, mpy_total(), *shape)
    return text + ("\n" + tls_c_heap(heap) if tls else "")


def _missing_parts(tls):
    if not mosquitto_exe():
        return "Debian's mosquitto is not installed (apt-get install mosquitto; .ci/run does)"
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return "paho-mqtt is not installed (pip install -e '.[dev]')"
    if runtime.micropython_exe() is None:
        return "the MicroPython unix port is not installed (./dev test installs it)"
    if tls and not runtime.has_tls(runtime.micropython_exe()):
        return f"{runtime.micropython_exe()} has no tls module"
    if tls and not shutil.which("openssl"):
        return "openssl is not installed (it makes the run's CA)"
    return None


def measure(
    heap,
    frames,
    burst,
    gap,
    idle,
    tls=False,
    destinations=1,
    discovery=False,
    ciphered=False,
    local_api=False,
    tariff=False,
    page=False,
    registers=False,
    stream=True,
):
    """One run at `heap`: a dict of what was measured, `problem` None if it ran cleanly."""
    run = {"heap": heap, "problem": None, "latency": [], "latency_returned": []}
    frame = encoder.aidon(2)
    if ciphered:  # the bytes on the line: the APDU ciphered, its tag and security header
        frame = encoder.sealed_hdlc(frame, KEY, AUTH_KEY)
    run.update(stats=[], log=[], frame_bytes=len(frame))
    with tempfile.TemporaryDirectory(prefix="hanport-bench-") as tmp:
        certs = None
        if tls:
            certs = make_ca(tmp)
            shutil.copy(certs / "ca.pem", Path(tmp) / "ca.pem")  # beside config.json
        broker = Mosquitto(tmp, tls=certs).start()
        parts = [broker]  # stopped in reverse order
        try:
            sub = Subscriber(broker.port, BASE)
            parts.append(sub)
            line = Line()
            parts.append(line)
            config = _config(
                broker.tls_port or broker.port,
                "ca.pem" if tls else None,
                destinations,
                discovery,
                broker.port,
                ciphered,
                tariff,
            )
            http = None
            if local_api:
                config["local_api"] = {"enabled": True, "share": "full"}
            if page:
                from .config_cmd import page_section

                config["page"] = page_section(PAGE_PASSWORD)
            if local_api or page:
                http = f"127.0.0.1:{free_port()}"
            dongle = Dongle(tmp, config, heap, line.port, http).start()
            parts.append(dongle)
            run["log"] = dongle.output
            if local_api:
                poller = Poller(f"http://{http}/api/v1/data", POLL_S)
                parts.append(poller)
                run["api"] = poller.answers
            if page:  # page (True, or a number of clients): clients at once, each its thread
                run["page"] = {}
                for i in range(int(page)):
                    if i % 2:  # the page's file (29 KB from flash), as a browser opening it
                        poller = Poller(f"http://{http}/", POLL_S)
                    else:  # logs in (again at each 401), then reads the live view
                        poller = Poller(f"http://{http}/page/live", POLL_S, login=PAGE_PASSWORD)
                    parts.append(poller)
                    run.setdefault("pollers", []).append(poller)
                if stream:  # and one more holds the live stream, as the page in a browser
                    watcher = Watcher(f"http://{http}/page/stream", PAGE_PASSWORD)
                    parts.append(watcher)
                    run["stream"] = watcher.answers
            hourly = tariff or registers
            _session(run, sub, line, dongle, frames, burst, gap, idle, ciphered, hourly)
        finally:
            for part in reversed(parts):
                part.stop()
            for poller in run.pop("pollers", []):  # the page clients' answers, added up
                for k, v in poller.answers.items():
                    run["page"][k] = run["page"].get(k, 0) + v
    bad = [x for x in run["log"] if "MemoryError" in x or "out of memory" in x]
    if bad and not run["problem"]:
        run["problem"] = f"{len(bad)} memory errors in the dongle log, first: {bad[0].strip()}"
    return run


def _config(
    broker_port,
    ca=None,
    destinations=1,
    discovery=False,
    plain_port=None,
    ciphered=False,
    tariff=False,
):
    dest = {
        "name": "bench",
        "host": "127.0.0.1",
        "port": broker_port,
        "tls": {"ca": ca} if ca else None,
        "topic": BASE,
        "share": "full",
        "discovery": discovery,
        "retry_min": 1,
        "retry_max": 2,
        "stats_interval": 1,  # free_heap every second
    }
    cfg = {
        "wifi": [],
        "hostname": "hanport-bench",
        "meter": dict(METER, key=KEY.hex(), auth_key=AUTH_KEY.hex()) if ciphered else METER,
        "ntp": None,
        "destinations": [dest]
        + [_other(i, plain_port or broker_port) for i in range(1, destinations)],
    }
    if tariff:
        cfg["tariff"] = {}  # the default ladder
    return cfg


def _other(i, port):
    """A plain destination beside the measured one: its own session, topic and stats."""
    return {
        "name": f"other{i}",
        "host": "127.0.0.1",
        "port": port,
        "tls": None,
        "topic": f"{BASE}-other{i}",
        "share": "full",
        "discovery": False,
        "retry_min": 1,
        "retry_max": 2,
    }


def _session(run, sub, line, dongle, frames, burst, gap, idle, ciphered=False, hourly=False):
    make = encoder.aidon
    if hourly:
        # Every 20th frame a List 3, an hour after the last one (a meter sends one in
        # ~1,800): the account's code loaded (and dropped) and its state written for each,
        # 55 times over the run, while the sessions run.
        frame_no = iter(range(1 << 30))

        def make(kind, values):
            k = next(frame_no)
            if k % 20:
                return encoder.aidon(kind, values)
            t = datetime(2026, 1, 1) + timedelta(hours=k // 20)
            energy = (100_000_000 + 1234 * k, 0, 0, 0)
            values = dict(values, time=(t.year, t.month, t.day, t.hour, 0, 5), energy=energy)
            return encoder.aidon(3, values)

    elif ciphered:
        counter = iter(range(1, 1 << 32))

        def make(kind, values):
            frame = encoder.aidon(kind, values)
            return encoder.sealed_hdlc(frame, KEY, AUTH_KEY, counter=next(counter))

    if not dongle.wait_log("destination bench connected", 20):
        run["problem"] = "the dongle never connected to the broker"
        return
    if not line.wait_client(10):
        run["problem"] = "the dongle never connected to the meter's socket"
        return
    clock = CpuClock(dongle.interpreter_pid())
    run["clock"] = clock.name
    # After boot, every session up and nothing decoded yet: the first stats that say so.
    first = sub.wait_stats(lambda s: s.get("readings") == 0, 5)
    run["boot_free"] = first.get("free_heap") if first else None

    # 1. Latency, one frame at a time; the paced run's CPU is measured too.
    lost = 0
    cpu0, t0 = clock.seconds(), time.monotonic()
    run["since"] = t0  # heap: the stats from the first frame on
    for i in range(frames):
        frame = make(2, {"p_import": 10000 + i})
        line.send(frame[:-1])
        time.sleep(BODY_PAUSE)
        called, returned = line.send(frame[-1:])
        got = sub.wait_power(10000 + i, MESSAGE_WAIT)
        if got is None:
            lost += 1
            if lost >= GIVE_UP or not dongle.alive():
                run["problem"] = f"no message for {lost} frames in a row (of {i + 1} sent)"
                run["problem"] += _counters(sub.wait_stats(lambda s: s.get("readings"), 3))
                run["stats"] = sub.stats_since(t0)
                return
        else:
            lost = 0
            run["latency"].append((got - called) * 1000)
            run["latency_returned"].append((got - returned) * 1000)
        time.sleep(gap)
    paced_cpu, paced_s = clock.seconds() - cpu0, time.monotonic() - t0
    run["lost"] = frames - len(run["latency"])

    # 2. Idle: the ticker and the stats every second, no frames.
    time.sleep(0.3)
    cpu0, t0 = clock.seconds(), time.monotonic()
    time.sleep(idle)
    idle_rate = (clock.seconds() - cpu0) / (time.monotonic() - t0)
    run["idle_cpu_pct"] = idle_rate * 100
    run["cpu_paced_us"] = (paced_cpu - idle_rate * paced_s) / frames * 1e6

    # 3. CPU per frame: `burst` frames back to back, until the last one's message; three
    # times, as one burst's figure varied by +-25 % between runs on a 2-CPU host.
    cpu, took, published = [], [], 0
    for k in range(BURSTS):
        first = 20000 + k * burst
        blob = b"".join(make(2, {"p_import": first + i}) for i in range(burst))
        cpu0, t0 = clock.seconds(), time.monotonic()
        line.send(blob)
        if sub.wait_power(first + burst - 1, 30) is None:
            run["problem"] = "the last frame of a burst was never published"
            return
        dt = time.monotonic() - t0
        cpu.append((clock.seconds() - cpu0 - idle_rate * dt) / burst * 1e6)
        took.append(dt * 1000)
        published += len(sub.powers(first, first + burst))
        time.sleep(0.3)
    run["cpu_burst_us"] = statistics.median(cpu)
    run["cpu_burst_range"] = (min(cpu), max(cpu))
    run["burst_ms"] = statistics.median(took)
    run["burst_published"] = published
    # The dongle's own count of what it decoded, from a stats message after the bursts.
    decoded = frames - run["lost"] + BURSTS * burst
    stats = sub.wait_stats(lambda s: s.get("readings", 0) >= decoded, 3)
    run["readings"] = stats.get("readings") if stats else None
    run["stats"] = sub.stats_since(run["since"])


def _counters(stats):
    """What the dongle's own stats say about its readings, for a failed run."""
    if not stats:
        return "; no stats from the dongle"
    d = stats.get("destination", {})
    # dongle.Dongle._reading counts a MemoryError in offer() as a dropped message, unlogged.
    return (
        f"; its stats: {stats.get('readings')} readings decoded, {d.get('published')} "
        f"messages published, {d.get('dropped')} dropped (a MemoryError in "
        f"Destination.offer() is counted there, not logged), free_heap "
        f"{stats.get('free_heap')} B"
    )


def _markdown(
    runs,
    frames,
    burst,
    gap,
    mpy,
    tls=False,
    destinations=1,
    discovery=False,
    ciphered=False,
    local_api=False,
    tariff=False,
    page=False,
    registers=False,
    stream=True,
):
    last = runs[-1]
    lines = [
        "# hanctl bench --pipeline",
        "",
        f"- firmware: its real main under `hanctl run`, {runtime.micropython_version()} "
        f"unix port, {_image()}; broker: {_mosquitto_version()} on 127.0.0.1; "
        "subscriber: paho-mqtt on the host",
        f"- frames: Aidon List 2 ({last['frame_bytes']} B), each with its own active power"
        + (", ciphered (AES-128-GCM, security 0x30, the dongle holds the keys)" if ciphered else "")
        + "; "
        "one destination measured, share `full`, stats every 1 s"
        + (", over TLS (mosquitto's TLS listener; the dongle verifies its CA)" if tls else "")
        + (", Home Assistant discovery on" if discovery else "")
        + (f"; {destinations - 1} plain destination(s) beside it" if destinations > 1 else "")
        + (f"; HomeWizard's local API on, /api/v1/data read every {POLL_S} s" if local_api else "")
        + (
            f"; the owner's page on, /page/live read every {POLL_S} s, logged in"
            + (
                f", by {(page + 1) // 2} of {page} clients at once (the others read the "
                f"page's file every {POLL_S} s)"
                if page > 1
                else ""
            )
            + (", and /page/stream held by one more client" if stream else "")
            if page
            else ""
        )
        + (
            '; a "tariff" in the config, every 20th frame a List 3 an hour after the last'
            if tariff
            else "; every 20th frame a List 3 an hour after the last"
            if registers
            else ""
        ),
        f"- latency: {frames} frames, the closing flag {BODY_PAUSE * 1000:.0f} ms after the "
        "body, from the simulator's sendall of it to the subscriber's receipt; "
        f"{gap * 1000:.0f} ms of quiet after each message",
        f"- CPU of the `micropython` process ({last.get('clock', 'n/a')}) minus its idle CPU "
        f"over the same time, per frame: burst = {burst} frames back to back until the "
        f"last one's message (median of {BURSTS}); paced = the latency run",
        "- heap: the firmware's stats from the first frame on; used = heap size - free_heap "
        "(after gc.collect()); steady = median",
        "",
        "| heap | ran | latency median ms | p99 ms | first frame ms | boot heap used B "
        "| peak heap used B | steady heap used B | CPU µs/frame, burst | CPU µs/frame, paced "
        "| idle CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(run) for run in runs]
    lines.append("")
    for run in runs:
        lines += _notes(run, frames, burst)
    lines.append(f"- Firmware as shipped: {len(mpy)} modules, {sum(mpy.values())} B of .mpy (-O3).")
    lines.append("")
    best = next((r for r in runs if not r["problem"]), last)
    lat = _summary(best["latency"])
    used = _heap_used(best)
    goal_ms, goal_heap = TARGETS["latency_ms"], TARGETS["steady_heap"]
    lines.append(f"Targets (measured at -X heapsize={best['heap']}):")
    if lat:
        lines.append(
            f"- median latency {lat[0]:.1f} ms (p99 {lat[1]:.1f} ms): target <= {goal_ms:.0f} "
            f"ms, {'met' if lat[0] <= goal_ms else 'NOT met'}"
        )
    else:
        lines.append(f"- median latency: not measured (target <= {goal_ms:.0f} ms)")
    if used:
        lines.append(
            f"- steady-state heap {used[1]} B = {used[1] / 1024:.1f} KiB used: target <= "
            f"{goal_heap // 1024} KB, {'met' if used[1] <= goal_heap else 'NOT met'}"
        )
    else:
        lines.append(f"- steady-state heap: not measured (target <= {goal_heap // 1024} KB)")
    return "\n".join(lines)


def _row(run):
    lat = _summary(run["latency"])
    used = _heap_used(run)

    def num(key, fmt="{:.0f}"):
        return fmt.format(run[key]) if key in run else "n/a"

    cells = [run["heap"], "no" if run["problem"] else "yes"]
    cells += [f"{lat[0]:.1f}", f"{lat[1]:.1f}"] if lat else ["n/a", "n/a"]
    cells.append(f"{run['latency'][0]:.1f}" if run["latency"] else "n/a")
    boot = run.get("boot_free")
    cells.append(str(_heap_bytes(run["heap"]) - boot) if isinstance(boot, int) else "n/a")
    cells += [str(used[0]), str(used[1])] if used else ["n/a", "n/a"]
    cells += [num("cpu_burst_us"), num("cpu_paced_us"), num("idle_cpu_pct", "{:.1f}")]
    return "| " + " | ".join(cells) + " |"


def _notes(run, frames, burst):
    out = []
    if run["problem"]:
        out.append(f"- At -X heapsize={run['heap']} the firmware did not run: {run['problem']}.")
        tail = [x for x in run["log"] if x.strip()][-3:]
        if tail:
            out.append("  Last dongle log lines: " + " / ".join(f"`{x}`" for x in tail))
    ret = _summary(run["latency_returned"])
    if ret:
        out.append(
            f"- {run['heap']}: latency from the return of that sendall instead: median "
            f"{ret[0]:.1f} ms, p99 {ret[1]:.1f} ms. The sender is sometimes resumed only "
            "after the woken dongle has run, so that clock can start late; the table "
            "starts it at the call."
        )
    if run.get("lost"):
        out.append(f"- {run['heap']}: {run['lost']} of {frames} paced frames got no message.")
    if "api" in run:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(run["api"].items(), key=str))
        out.append(f"- {run['heap']}: the local API's answers to the client: {answers or 'none'}.")
    if "page" in run:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(run["page"].items(), key=str))
        out.append(f"- {run['heap']}: the page's answers to its client: {answers or 'none'}.")
    if "stream" in run:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(run["stream"].items(), key=str))
        out.append(f"- {run['heap']}: the live stream's client: {answers or 'none'}.")
    if "burst_ms" in run:
        lo, hi = run["cpu_burst_range"]
        out.append(
            f"- {run['heap']}: {BURSTS} bursts of {burst} frames ({burst * run['frame_bytes']} B "
            f"in one sendall each): CPU {lo:.0f}-{hi:.0f} µs/frame (median in the table), last "
            f"message {run['burst_ms']:.0f} ms after the sendall (median); "
            f"{run['burst_published']} of the {BURSTS * burst} readings reached the broker (a "
            "live message still unsent when the next comes is replaced); the dongle counted "
            f"{run['readings']} readings in all."
        )
    return out


def _summary(latencies):
    """(median, p99) in ms (p99 the nearest rank), or None."""
    if not latencies:
        return None
    xs = sorted(latencies)
    return statistics.median(xs), xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]


def _heap_used(run):
    """(peak, steady) heap bytes in use, from the stats' free_heap, or None."""
    free = [s["free_heap"] for s in run["stats"] if isinstance(s.get("free_heap"), int)]
    if not free:
        return None
    size = _heap_bytes(run["heap"])
    return size - min(free), size - round(statistics.median(free))


def _heap_bytes(heap):
    m = re.fullmatch(r"(\d+)(w?)([kKmM]?)", heap)
    n = int(m[1]) * (8 if m[2] else 1)  # a word of the 64-bit unix port
    return n * {"": 1, "k": 1024, "m": 1024 * 1024}[m[3].lower()]


def mpy_total():
    """{module: .mpy bytes} of every firmware module as shipped (-O3)."""
    with tempfile.TemporaryDirectory() as tmp:
        return {p.stem: p.stat().st_size for p in runtime.compile_firmware(tmp, 3).glob("*.mpy")}


def _image():
    return runtime.describe_image()


def _mosquitto_version():
    try:
        exe = mosquitto_exe() or "mosquitto"
        out = subprocess.run([exe, "-h"], capture_output=True, text=True).stdout
    except OSError:
        return "mosquitto"
    return out.splitlines()[0] if out else "mosquitto"


# One TLS connection after another, kept open, to a broker's TLS listener (verified, as the
# firmware's destination.py does it); run under valgrind's massif by tls_c_heap().
_TLS_CLIENTS = """
import socket, sys, time, tls
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_REQUIRED
ctx.load_verify_locations(open(sys.argv[1], "rb").read())
held = []
for _ in range(int(sys.argv[3])):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", int(sys.argv[2]))[0][-1])
    held.append(ctx.wrap_socket(s, server_hostname="localhost"))
print(len(held))
time.sleep(120)  # holding them until SIGTERM: an exit would run the sockets' finalisers
"""


def tls_c_heap(heap="96K", connections=(0, 1, 2)):
    """Markdown line: what 1, 2 TLS connections held open add to the C heap (valgrind's
    massif), where this unix port's mbedTLS keeps its buffers, outside MicroPython's heap.
    `held`: massif's last snapshot, taken as SIGTERM ends the clients' script while it
    holds them; `peak`: its highest, the handshake's temporary memory included."""
    if not shutil.which("valgrind"):
        return "- mbedTLS's C heap: not measured (valgrind is not installed)."
    held, peaks = [], []
    with tempfile.TemporaryDirectory(prefix="hanport-bench-") as tmp:
        certs = make_ca(tmp, der=True)
        der = certs / "ca.der"
        (Path(tmp) / "clients.py").write_text(_TLS_CLIENTS)
        broker = Mosquitto(tmp, tls=certs).start()
        try:
            for n in connections:
                out = Path(tmp) / f"massif.{n}"
                argv = ["valgrind", "--tool=massif", f"--massif-out-file={out}"]
                argv += runtime.micropython_argv(str(Path(tmp) / "clients.py"), heap)
                argv += [str(der), str(broker.tls_port), str(n)]
                why = _massif(argv, str(n))
                if why:
                    return f"- mbedTLS's C heap: not measured ({n} connections: {why})."
                sizes = [int(x[11:]) for x in out.read_text().split() if "mem_heap_B=" in x]
                held.append(sizes[-1])
                peaks.append(max(sizes))
        finally:
            broker.stop()

    def steps(xs):
        return ", ".join(f"+{b - a} B" for a, b in zip(xs, xs[1:], strict=False))

    return (
        f"- mbedTLS's C heap (valgrind massif; {held[0]} B with no TLS connection, "
        f"MicroPython's {heap} heap block among them): each of {len(held) - 1} TLS "
        f"connections held open adds {steps(held)} (peak during the handshakes "
        f"{steps(peaks)})."
    )


def _massif(argv, ready, limit=120):
    """Run argv (valgrind's massif on the clients' script) until it prints `ready`, then
    SIGTERM it (valgrind writes its file then too); None, or what went wrong. Killed after
    `limit` seconds if it never gets there (a handshake that never ends)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(limit, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline().strip()  # the script's count, once it holds them all
        if line != ready:
            err = proc.communicate(timeout=30)[1].splitlines()[-2:]
            if not timer.is_alive():
                return f"no answer in {limit} s"
            return "failed: " + " / ".join(err)
        proc.terminate()
        proc.communicate(timeout=60)
        if proc.returncode != -signal.SIGTERM:  # it had ended: its finalisers ran first
            return f"the script ended by itself ({proc.returncode}) before SIGTERM"
        return None
    except subprocess.TimeoutExpired:
        return "valgrind did not end after SIGTERM"
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
