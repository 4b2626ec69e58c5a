"""hal_esp32, the ESP32 hardware layer, on a model of MicroPython's ESP32 port
(host_tests/mp/esp32_model/: machine, network, ntptime) under the real MicroPython unix port.

startup boots Dongle with hal_esp32 as on a board (host_tests/mp/esp32_boot.py names the
layer, startup.main(hal_esp32)); the meter's bytes come down a modelled UART from
hanctl's simulator, which serves what a UART at the setting the HAL gave it reads from
the meter, and reach Debian's mosquitto. The model is strict: what the port refuses, it
refuses, and that is tested here too, for the oldest MicroPython we support (1.23) and the
newest (1.29.0-preview)."""

import ast
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import dns.resolver
import pytest

import rig
from hanctl import encoder
from hanctl.run import RESTART
from hanctl.simulate import Server
from mp import HERE, run_driver, start_driver
from reading import to_json

ROOT = HERE.parents[1]
MODEL = HERE / "esp32_model"
VERSIONS = ("1.23", "1.29")
LATEST = VERSIONS[-1]
DEVKIT = "esp32-devkit-tss721"  # ESP32, UART2 with RX on GPIO16, LED on GPIO2 (active high)
METER_LINE = (2400, "8E1", False)  # a Kaifa meter's
PASSWORD = "password1"
# The stock interpreter at the end-to-end tests' 160K, plus the model's own code, which a
# board keeps in its firmware, not in the heap.
HEAP = "256K"

needs_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)


class World:
    """The model's world file (esp32_model/world.py says what it holds). set() rewrites it
    whole; the model reads it again within 100 ms."""

    def __init__(self, path, **values):
        self.path = Path(path)
        self.values = {"micropython": LATEST, "chip": "esp32", "join_ms": 300}
        self.set(**values)

    def set(self, **changes):
        self.values.update(changes)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.values))
        os.replace(tmp, self.path)


class Board(rig.Dongle):
    """startup -> Dongle with hal_esp32 on the model, in its own process group. Its flash is
    the state folder (board.json, config.json, what the dongle writes); machine.reset()
    ends the process with hanctl run's RESTART status and the board starts again, as
    `hanctl run` restarts the unix HAL's."""

    def __init__(self, state, config, world, board=DEVKIT):
        super().__init__(state, config, uart=None, heap=HEAP)
        self.world = world
        self.board = board
        self.boots = 0
        self.ended = threading.Event()  # the last boot ended without a reset
        self._lock = threading.Lock()
        self._stopping = False

    def start(self):
        self.state.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "boards" / self.board / "board.json", self.state / "board.json")
        config = self.state / "config.json"
        if self.config is None:
            config.unlink(missing_ok=True)
        else:
            text = self.config if isinstance(self.config, str) else json.dumps(self.config)
            config.write_text(text)
        self._boot()
        return self

    def _boot(self):
        self.boots += 1
        self.proc = start_driver(
            "esp32_boot.py",
            self.heap,
            paths=[MODEL],
            env={"ESP32_MODEL": str(self.world.path)},
            cwd=self.state,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        super()._pump()
        with self._lock:
            if self.proc.wait() == RESTART and not self._stopping:
                self._boot()
            else:
                self.ended.set()

    def wait_log(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.ended.is_set():
            if any(text in line for line in self.output):
                return
            time.sleep(0.05)
        if any(text in line for line in self.output):
            return
        raise AssertionError(f"no log line with {text!r}; log:\n" + self.log_tail())

    def log_tail(self):
        busy = ("pin 2 ", "wdt feed")  # a line a second, or ten: the rest says more
        return "\n".join([x for x in self.output if not any(b in x for b in busy)][-60:])

    def stop(self):
        with self._lock:
            self._stopping = True
        super().stop()

    def model(self, what):
        """(ticks_ms, rest of the line) of each line the model printed that starts with
        `what` after its tick count, e.g. model("wdt feed")."""
        out = []
        for line in list(self.output):
            if line.startswith("esp32-model: "):
                ticks, _, rest = line[13:].partition(" ")
                if rest.startswith(what):
                    out.append((int(ticks), rest[len(what) :].strip()))
        return out

    def firmware_log(self):
        return [x for x in self.output if x.startswith("hanport:")]


def board_config(*destinations, wifi=("home",), ntp="ntp.test"):
    cfg = rig.config(*destinations)
    cfg["wifi"] = [{"ssid": s, "password": PASSWORD} for s in wifi]
    cfg["board"] = DEVKIT
    cfg["ntp"] = ntp
    return cfg


def kaifa_frames(n, first=0):
    out = []
    for i in range(first, first + n):
        values = {"time": (2024, 3, 5, 10, i // 60, i % 60), "p_import": 1000 + i}
        out.append(encoder.kaifa(2, values))
    return out


def changes(writes):
    """The level changes among pin writes [(ticks, "level")]: [(ticks, level)]."""
    out = []
    for ticks, level in writes:
        if not out or out[-1][1] != level:
            out.append((ticks, level))
    return out


def gaps(ticks):
    return [b - a for a, b in zip(ticks, ticks[1:], strict=False)]


def check_watchdog(board, timeout=30000):
    """Started once with the dongle's timeout and fed ever since, by the ticker once a
    second: never late by a sixth of its timeout, let alone the whole (loaded test
    machines stretch a second at times)."""
    assert [t for _, t in board.model("wdt start timeout")] == [str(timeout)]
    feeds = [t for t, _ in board.model("wdt feed")]
    assert len(feeds) >= 5, board.log_tail()
    assert max(gaps(feeds)) < timeout // 6, gaps(feeds)
    assert sorted(gaps(feeds))[len(feeds) // 2] < 1200  # about once a second
    assert not board.model("wdt expired")
    last_tick = max(t for t, _ in board.model(""))
    assert last_tick - feeds[-1] < timeout // 6


# -- The dongle on the model ----------------------------------------------------------------


@needs_mosquitto
@pytest.mark.parametrize("version", VERSIONS)
def test_startup_boots_the_dongle_on_hal_esp32_and_meter_bytes_reach_the_broker(parts, version):
    tmp, track = parts
    broker = track(rig.Broker(tmp, "a").start())
    sub = track(rig.Subscriber(broker))
    frames = kaifa_frames(4)
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go), line=METER_LINE).start())
    world = World(
        tmp / "world.json",
        micropython=version,
        meter={"pin": 16, "port": meter.port},
        aps={"home": {"password": PASSWORD}},
        ntp=["ntp.test"],
    )
    board = track(Board(tmp / "fs", board_config(rig.destination("A", broker)), world).start())
    board.wait_log("destination A connected", timeout=40)
    assert board.boots == 2  # the fresh config.json was checked, then machine.reset()
    assert "hanport: hanport 0.3.0 on esp32" in board.output

    # Before the first frame the status LED blinks once a second (README).
    rig.wait_for(lambda: len(changes(board.model("pin 2"))) >= 4, why="4 blinks", dongle=board)
    blinks = changes(board.model("pin 2"))
    assert all(800 < g < 1500 for g in gaps([t for t, _ in blinks])), blinks  # 1000 ms

    go.set()
    want = rig.expected_readings(frames)
    got = sub.wait("A/reading", len(want))
    assert [m[1].decode() for m in got] == [to_json(r) for r in want]  # byte for byte

    # The UART as hal_esp32 set it: the board's UART2, RX on HAN_RX, 2400 8E1 with the
    # room for a TLS handshake's worth of bytes; the meter's end read it at that setting.
    uart = board.model("uart UART(2,")[-1][1]
    assert "baudrate=2400, bits=8, parity=0, stop=1, tx=17, rx=16," in uart
    assert "rxbuf=2048," in uart and "invert" not in uart
    assert meter.delivered[METER_LINE] == len(frames)

    # While frames arrive the LED stays on: written on every second, never off again.
    def steady_on():
        """the LED on, and written on three times since it last changed"""
        writes = board.model("pin 2")
        last = changes(writes)[-1]
        return last[1] == "1" and len([w for w in writes if w[0] > last[0]]) >= 3

    rig.wait_for(steady_on, 10, dongle=board)

    # Wi-Fi joined under the configured host name, then the clock set from NTP.
    joined = board.model("wlan got ip 'home'")
    assert [x[1] for x in joined] == ["hostname hanport-test"]
    assert [x[1] for x in board.model("ntp query")] == ["'ntp.test'"]
    assert board.model("rtc datetime")[0][0] >= joined[0][0]
    assert "hanport: wifi home 192.168.1.50" in board.output

    # It came up from the machine.reset() after the config check: reset_cause() says so.
    assert json.loads(sub.wait("A/stats")[-1][1])["reset_cause"] == "hard"

    check_watchdog(board)
    assert board.model("deprecated") == [], "hal_esp32 uses an API the port deprecates"
    assert not [x for x in board.output if "Traceback" in x or "ended" in x]


@needs_mosquitto
def test_wifi_joins_networks_in_order_retries_and_survives_a_drop(parts):
    tmp, track = parts
    broker = track(rig.Broker(tmp, "a").start())
    sub = track(rig.Subscriber(broker))
    frames = kaifa_frames(60)  # a frame every 1.5 s, all test long
    meter = track(Server(rig.scripted(frames, gap=1.2), line=METER_LINE).start())
    world = World(
        tmp / "world.json",
        meter={"pin": 16, "port": meter.port},
        aps={"home": {"password": PASSWORD}},  # "cabin" is out of range
        ntp=["ntp.test"],
    )
    cfg = board_config(rig.destination("A", broker), wifi=("cabin", "home"))
    board = track(Board(tmp / "fs", cfg, world).start())

    # In order: "cabin" first, for the HAL's 10 s, then "home".
    board.wait_log("hanport: wifi home", timeout=60)
    tries = board.model("wlan connect")
    assert [t[1].split()[0] for t in tries] == ["'cabin'", "'home'"]
    assert tries[1][0] - tries[0][0] >= 10000
    assert board.model("wlan attempt failed 'cabin'")[0][1] == "reason 201"  # NO_AP_FOUND

    # "home" goes away: the link drops and the station, still asked to connect, keeps
    # trying by itself. The dongle notices within 10 s and goes through its list again.
    world.set(aps={})
    rig.wait_for(lambda: board.model("wlan link lost 'home'"), 20, why="link lost", dongle=board)
    lost_at = board.model("wlan link lost")[0][0]
    rig.wait_for(lambda: len(board.model("wlan connect")) > 2, 20, why="retry", dongle=board)
    world.set(aps={"home": {"password": PASSWORD}})  # back while the dongle tries "cabin"
    rig.wait_for(lambda: len(board.model("wlan got ip")) == 2, 40, why="rejoin", dongle=board)

    after = [t[1].split()[0] for t in board.model("wlan connect") if t[0] > lost_at]
    assert after[:2] == ["'cabin'", "'home'"], board.model("wlan")
    assert not [t for t in board.model("wlan connect") if "refused" in t[1]]
    assert not [x for x in board.firmware_log() if "ended" in x], board.log_tail()

    # The meter's readings kept coming, and reach the broker after the rejoin too.
    count = len(sub.on("A/reading"))
    rig.wait_for(lambda: len(sub.on("A/reading")) > count, 10, why="readings", dongle=board)
    check_watchdog(board)


# -- Setup mode: when it starts, and what it opens -------------------------------------------


def setup_world(tmp, **values):
    """A world whose board's port 80 and 53 are free ports of the host (esp32_model/socket.py)."""
    return World(tmp / "world.json", ports={"80": rig.free_port(), "53": udp_port()}, **values)


def udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_setup_mode(board, world, timeout=40):
    """The access point up before anything else of it, WPA2 with the password the log shows,
    its name from the MAC; the captive DNS and the probes answered with the page at the
    AP's address; the LED's two short flashes every 2 s; no meter, no watchdog. Returns the
    password."""
    board.wait_log("setup: DNS on port 53", timeout=timeout)
    up = board.model("wlan ap active True")
    assert len(up) == 1, board.log_tail()
    # The AP's settings were given while it was off: it never ran open.
    assert "essid='hanport-000001' authmode=3 channel=6 max_clients=2 password_len=12" in up[0][1]
    line = next(x for x in board.output if "setup mode: Wi-Fi hanport-000001 password" in x)
    key = line.split()[-1]
    assert len(key) == 12
    assert "hanport: setup mode: then open http://192.168.4.1/" in board.output

    ports = world.values["ports"]
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port, r.lifetime = ["127.0.0.1"], ports["53"], 5
    assert [a.address for a in r.resolve("connectivitycheck.gstatic.com", "A")] == ["192.168.4.1"]
    url = f"http://127.0.0.1:{ports['80']}/generate_204"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert 'url=http://192.168.4.1/"' in resp.read().decode()

    def setup_levels():
        return changes([w for w in board.model("pin 2") if w[0] >= up[0][0]])

    rig.wait_for(lambda: len(setup_levels()) >= 13, why="flashes", dongle=board)
    levels = setup_levels()
    first_on = next(i for i, c in enumerate(levels) if c[1] == "1")
    steps = gaps([t for t, _ in levels[first_on:]])
    # on 100 ms, off 100, on 100, off 1700: in steps of 100 ms, stretched on a busy machine
    assert all(g < 400 or 1400 < g < 2300 for g in steps), steps
    assert [g > 1000 for g in steps[:8]] == [False, False, False, True] * 2, steps
    for what in ("uart", "wdt", "wlan connect"):  # not since this boot began
        assert not [m for m in board.model(what) if m[0] >= up[0][0]], what
    return key


@pytest.mark.parametrize(
    "config", [None, "{not json", {"wifi": []}], ids=["missing", "broken", "invalid"]
)
def test_no_valid_config_starts_setup_mode(parts, config):
    tmp, track = parts
    world = setup_world(tmp)
    board = track(Board(tmp / "fs", config, world).start())
    key = check_setup_mode(board, world)
    assert board.boots == 1
    # Made once, kept on flash: the next setup mode has the same password.
    assert json.loads((tmp / "fs" / "setup.json").read_text()) == {"key": key}


def test_the_button_held_at_boot_starts_setup_mode(parts):
    tmp, track = parts
    world = setup_world(tmp, aps={"home": {"password": PASSWORD}}, inputs={"0": 0})
    board = track(Board(tmp / "fs", board_config(), world).start())
    check_setup_mode(board, world, timeout=60)
    assert board.boots == 2  # the fresh config checked, then the button read at the next boot
    assert not board.model("wlan connect")


def test_a_button_not_held_is_read_at_boot_and_the_dongle_runs(parts):
    tmp, track = parts
    world = setup_world(tmp, aps={"home": {"password": PASSWORD}})
    board = track(Board(tmp / "fs", board_config(), world).start())
    board.wait_log("running: 0 destination(s)", timeout=60)
    assert not board.model("wlan ap")
    assert board.boots == 2


def test_no_wifi_joined_for_5_minutes_starts_setup_mode_and_it_returns_when_unused(parts):
    tmp, track = parts
    world = setup_world(tmp)  # "home" is not in range
    board = track(Board(tmp / "fs", board_config(), world).start())
    board.wait_log("running: 0 destination(s)", timeout=60)
    rig.wait_for(lambda: board.model("wlan attempt failed 'home'"), 30, dongle=board)
    assert not board.model("wlan ap")
    world.set(clock_skip_ms=240_000)  # 4 minutes on (and the seconds it ran): not yet
    time.sleep(12)
    assert board.boots == 2 and not board.model("wlan ap"), board.log_tail()
    world.set(clock_skip_ms=300_000)
    board.wait_log("setup: the last boot joined none of config.json's Wi-Fi", timeout=30)
    check_setup_mode(board, world)
    assert board.boots == 3
    assert "wifi" not in json.loads((tmp / "fs" / "state.json").read_text())  # tried again next

    # Nobody uses it for 15 minutes (a router that was off, say): back to the config, and
    # the network that is back now is joined. (From the look at the requests that saw
    # check_setup_mode's: the one that logs the DNS count.)
    board.wait_log("setup: DNS answered 1,")
    world.set(aps={"home": {"password": PASSWORD}}, clock_skip_ms=300_000 + 901_000)
    board.wait_log("setup: no request for 900 s", timeout=30)
    rig.wait_for(lambda: board.model("wlan got ip 'home'"), 60, dongle=board)
    assert board.boots == 4


@needs_mosquitto
def test_setup_mode_then_the_saved_config_runs_and_no_message_holds_the_ap_password(parts):
    tmp, track = parts
    broker = track(rig.Broker(tmp, "a").start())
    sub = track(rig.Subscriber(broker))
    go = threading.Event()
    meter = track(Server(rig.scripted(kaifa_frames(3), go), line=METER_LINE).start())
    world = setup_world(
        tmp, meter={"pin": 16, "port": meter.port}, aps={"home": {"password": PASSWORD}}
    )
    board = track(Board(tmp / "fs", None, world).start())
    key = check_setup_mode(board, world)
    # What the setup page saves: the dongle restarts into it.
    cfg = board_config(rig.destination("A", broker), ntp=None)
    (tmp / "fs" / "config.json").write_text(json.dumps(cfg))
    board.wait_log("setup: config.json is valid: restarting into it", timeout=30)
    board.wait_log("destination A connected", timeout=60)
    assert board.boots == 2
    go.set()
    sub.wait("A/reading", 3)
    sub.wait("A/stats")
    assert sub.messages and not [m for m in sub.messages if key.encode() in m[1]]
    assert key not in json.dumps(json.loads((tmp / "fs" / "state.json").read_text()))


# -- hal_esp32 on every board ---------------------------------------------------------------

BOARDS = sorted(p.parent.name for p in (ROOT / "boards").glob("*/board.json"))


def run_model(cases, world_path):
    """Run (id, statement) cases with esp32_model_driver.py; {id: (outcome, detail)} and
    the model's lines."""
    stdin = "".join(f"{case_id} {code}\n" for case_id, code in cases)
    proc = run_driver(
        "esp32_model_driver.py",
        stdin,
        heap=HEAP,
        paths=[MODEL],
        env={"ESP32_MODEL": str(world_path)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results, model = {}, []
    for line in proc.stdout.splitlines():
        if line.startswith("case "):
            case_id, outcome, detail = json.loads(line[5:])
            results[case_id] = (outcome, detail)
        elif line.startswith("esp32-model: "):
            model.append(line.split(" ", 2)[2])
    return results, model


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", BOARDS)
def test_every_board_sets_its_uart_and_led_on_the_model(tmp_path, name, version):
    board = json.loads((ROOT / "boards" / name / "board.json").read_text())
    world = World(tmp_path / "world.json", micropython=version, chip=board["chip"])
    cases = [
        ("import", "import json, hal_esp32"),
        ("board", f"b = json.loads({json.dumps(json.dumps(board))})"),
        ("uart", "u = hal_esp32.uart(b, None); u.configure(2400, '8E1', False)"),
        ("p1", "u.configure(115200, '8N1', True)"),
        ("led", "led = hal_esp32.led(b); led.set('on'); led.set('off')"),
        ("wdt", "hal_esp32.Watchdog(30000).feed()"),
        ("cause", "_ = hal_esp32.reset_cause()"),
    ]
    results, model = run_model(cases, world.path)
    assert all(r[0] == "ok" for r in results.values()), results
    assert results["cause"] == ("ok", "'power-on'")
    uart = [x[5:] for x in model if x.startswith(f"uart UART({board['uart']},")]
    rx = f"rx={board['pins']['HAN_RX']},"
    assert "baudrate=2400, bits=8, parity=0, stop=1," in uart[-2] and rx in uart[-2]
    assert "baudrate=115200, bits=8, parity=None, stop=1," in uart[-1] and rx in uart[-1]
    assert "rxbuf=2048," in uart[-1]
    # INV_RX when the line's inversion and the board's level shifter's differ.
    assert ("invert=INV_RX" in uart[-1]) != board["han_rx_inverted"]
    assert ("invert=INV_RX" in uart[-2]) == board["han_rx_inverted"]
    on = "0" if board["led_active_low"] else "1"
    off = "1" if on == "0" else "0"
    assert [x for x in model if x.startswith("pin ")] == [
        f"pin {board['pins']['LED_STATUS']} {level}" for level in (on, off)
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_scan_the_access_point_and_the_button_on_the_model(tmp_path, monkeypatch, version):
    aps = {
        "home": {"password": PASSWORD, "rssi": -71},
        "cafe": {"rssi": -40},
        "\u00e6\u00f8\u00e5": {"password": PASSWORD, "rssi": -80},
    }
    world = World(tmp_path / "world.json", micropython=version, aps=aps)
    board = json.dumps(json.dumps({"pins": {"BUTTON": 0}}))
    cases = [
        ("import", "import hal_esp32, json"),
        ("scan", "_ = hal_esp32.scan()"),
        ("ap", "_ = hal_esp32.access_point('hanport-000001', 'abcdefghijkm')"),
        ("short", "hal_esp32.access_point('hanport-000001', 'short')"),
        ("free", f"open('board.json', 'w').write({board}); _ = hal_esp32.button()"),
    ]
    monkeypatch.chdir(tmp_path)  # board.json in the driver's cwd
    results, model = run_model(cases, world.path)
    assert results["scan"][0] == "ok"
    assert ast.literal_eval(results["scan"][1]) == [
        ("cafe", -40, False), ("home", -71, True), ("\u00e6\u00f8\u00e5", -80, True)
    ]  # fmt: skip
    assert results["ap"] == ("ok", "('192.168.4.1', 53)")
    assert results["short"] == ("OSError", ["Wifi Invalid Password"])
    assert results["free"] == ("ok", "False")
    assert "wlan ap active True essid='hanport-000001' authmode=3 channel=6 max_clients=2" \
        " password_len=12" in model  # fmt: skip
    world.set(inputs={"0": 0})
    results, _ = run_model([("import", "import hal_esp32"), ("held", "_ = hal_esp32.button()")],
                           world.path)  # fmt: skip
    assert results["held"] == ("ok", "True")


# -- The model refuses what the port refuses ------------------------------------------------

OK = ("ok", "None")
# (id, statement, outcome in 1.23, outcome in 1.29 if it differs): an outcome is "ok" or
# (exception type, [its args]), as MicroPython's ESP32 port gives them.
CASES = [
    ("imp", "import machine, network, ntptime", OK),
    ("uart", "u = machine.UART(2)", OK),
    (
        "kw",
        "u.init(baudrate=2400, parity_bits=8)",
        ("TypeError", ["extra keyword arguments given"]),
    ),
    ("pos", "u.init(2400, 8, 0, 1, 17)", ("TypeError", ["extra positional arguments given"])),
    ("baud", "u.init(baudrate='2400')", ("TypeError", ["can't convert str to int"])),
    ("parity", "u.init(parity=0.5)", ("TypeError", ["can't convert float to int"])),
    ("bits", "u.init(bits=9)", ("ValueError", ["invalid data bits"])),
    ("stop", "u.init(stop=3)", ("ValueError", ["invalid stop bits"])),
    ("inv", "u.init(invert=1)", ("ValueError", ["invalid inversion mask"])),
    ("pin", "u.init(rx=24)", ("ValueError", ["invalid pin"])),
    ("unused", "u.init(tx=-1)", ("ValueError", ["invalid pin"]), OK),
    ("rxbuf", "u.init(rxbuf=128)", ("OSError", ["-258", "ESP_ERR_INVALID_ARG"])),
    ("no3", "machine.UART(3)", ("ValueError", ["UART(3) does not exist"])),
    (
        "repl",
        "machine.UART(0, rxbuf=1024)",
        ("ValueError", ["UART buffer size is fixed"]),
        ("ValueError", ["REPL UART buffer size is fixed"]),
    ),
    ("flash", "machine.UART(1)", ("BoardFault", ["UART1 on GPIO10, a flash pin: the chip stops"])),
    ("good", "u.init(2400, bits=8, parity=0, stop=1, rx=16, rxbuf=2048, invert=u.INV_RX)", OK),
    (
        "pkw",
        "machine.Pin(2, machine.Pin.OUT, pullup=1)",
        ("TypeError", ["extra keyword arguments given"]),
    ),
    ("p24", "machine.Pin(24)", ("ValueError", ["invalid pin"])),
    ("pname", "machine.Pin('LED')", ("ValueError", ["invalid pin"])),
    ("pin34", "machine.Pin(34, machine.Pin.OUT)", ("ValueError", ["pin can only be input"])),
    ("led", "p = machine.Pin(2, machine.Pin.OUT); p.value(1); _ = p.value()", ("ok", "1")),
    ("wdt0", "machine.WDT(timeout=0)", ("ValueError", ["WDT timeout too short"])),
    ("wdtid", "machine.WDT(1)", ("ValueError", [])),
    (
        "wdtkw",
        "machine.WDT(timeout=5000, feed=1)",
        ("TypeError", ["extra keyword arguments given"]),
    ),
    ("wdts", "machine.WDT(timeout='5000')", ("TypeError", ["can't convert str to int"])),
    (
        "rtc",
        "machine.RTC().datetime((2024, 1, 1))",
        ("ValueError", ["requested length 8 but object has length 3"]),
    ),
    ("host33", "network.hostname('x' * 33)", ("ValueError", [])),
    (
        "hostint",
        "network.hostname(5)",
        ("TypeError", ["can't convert 'int' object to str implicitly"]),
    ),
    ("host", "network.hostname('hanport-x'); _ = network.hostname()", ("ok", "'hanport-x'")),
    (
        "wkw",
        "network.WLAN(interface=0)",
        ("TypeError", ["function doesn't take keyword arguments"]),
    ),
    ("wif", "network.WLAN(2)", ("ValueError", ["invalid WLAN interface identifier"])),
    ("w", "w = network.WLAN(network.WLAN.IF_STA)", OK),
    ("cfg", "w.config(hostnme='x')", ("ValueError", ["unknown config param"])),
    ("cfgboth", "w.config('mac', pm=0)", ("TypeError", ["either pos or kw args are allowed"])),
    ("inactive", "w.connect('home', 'password1')", ("OSError", ["Wifi Not Started"])),
    ("scanoff", "w.scan()", ("OSError", ["STA must be active"])),
    ("staap", "w.config(essid='x')", ("OSError", ["AP required"])),
    ("ntpoff", "ntptime.settime()", ("OSError", ["-202"])),
    ("active", "w.active(True)", OK),
    ("scan", "_ = [(s[0], s[3], s[4]) for s in w.scan()]", ("ok", "[(b'home', -60, 3)]")),
    ("ap", "ap = network.WLAN(network.WLAN.IF_AP)", OK),
    (
        "apshort",
        "ap.config(essid='hanport-x', password='short', authmode=network.WLAN.SEC_WPA2)",
        ("OSError", ["Wifi Invalid Password"]),
    ),
    ("aprec", "ap.config(reconnects=1)", ("OSError", ["STA required"])),
    (
        "apgood",
        "ap.config(essid='hanport-x', password='12345678', authmode=3, channel=6, max_clients=2);"
        " _ = (ap.config('essid'), ap.config('authmode'), ap.config('max_clients'))",
        ("ok", "('hanport-x', 3, 2)"),
    ),
    ("apon", "ap.active(True); _ = (ap.active(), w.active())", ("ok", "(True, True)")),
    (
        "apaddr",
        "_ = ap.ipconfig('addr4')[0]",
        ("AttributeError", ["ipconfig"]),
        ("ok", "'192.168.4.1'"),
    ),
    ("btn", "b = machine.Pin(0, machine.Pin.IN, machine.Pin.PULL_UP); _ = b.value()", ("ok", "1")),
    (
        "ssid",
        "w.connect(5, 'password1')",
        ("TypeError", ["can't convert 'int' object to str implicitly"]),
    ),
    ("bssid", "w.connect('home', 'password1', bssid='xx')", ("ValueError", [])),
    ("connect", "w.connect('nowhere', 'password1'); _ = w.status()", ("ok", "1001")),
    ("again", "w.connect('home', 'password1')", ("OSError", ["Wifi Internal Error"])),
    ("leave", "w.disconnect(); _ = w.status()", ("ok", "1000")),
    (
        "ipcfg",
        "_ = w.ipconfig('addr4')",
        ("AttributeError", ["ipconfig"]),
        ("ok", "('0.0.0.0', '0.0.0.0')"),
    ),
    ("ifcfg", "_ = w.ifconfig()[0]", ("ok", "'0.0.0.0'")),
]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_model_refuses_what_the_port_refuses(tmp_path, version):
    world = World(
        tmp_path / "world.json", micropython=version, aps={"home": {"password": PASSWORD}}
    )
    assert len({c[0] for c in CASES}) == len(CASES)
    results, model = run_model([c[:2] for c in CASES], world.path)
    for case in CASES:
        want = case[2] if version == "1.23" or len(case) == 3 else case[3]
        got = results[case[0]]
        if want[0] == "AttributeError":  # the message is the unix port's, not the model's
            assert got[0] == "AttributeError", (case, got)
            continue
        assert got == (want[0], want[1]), (case, got)
    # ifconfig() is deprecated from 1.24, for ipconfig(); the model says when it is used.
    assert any(x.startswith("deprecated WLAN.ifconfig()") for x in model) == (version != "1.23")
