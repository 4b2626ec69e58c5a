"""`hanctl decode` and `hanctl bench` as an owner runs them: the installed console script,
the real MicroPython interpreter, captures as hex text or raw bytes."""

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from frames import FRAME, OTHER, P1
from hanctl import bench, encoder

HANCTL = Path(sys.executable).parent / "hanctl"


def hanctl(*args, stdin=b""):
    proc = subprocess.run([str(HANCTL), *args], input=stdin, capture_output=True, timeout=300)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_console_script_is_installed():
    assert HANCTL.is_file(), "pip install -e . (./dev) puts hanctl in the venv"


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_hex_text_and_raw_bytes_decode_alike(tmp_path, runtime):
    stream = FRAME + OTHER[1:] + P1
    spaced = " ".join(f"0x{b:02X}" if i % 7 == 0 else f"{b:02x}" for i, b in enumerate(stream))
    (tmp_path / "capture.hex").write_text(spaced[:200] + "\n\t" + spaced[200:] + "\n")
    (tmp_path / "capture.bin").write_bytes(stream)
    _, from_hex, _ = hanctl("decode", "--runtime", runtime, str(tmp_path / "capture.hex"))
    status, from_raw, err = hanctl("decode", "--runtime", runtime, str(tmp_path / "capture.bin"))
    assert status == 0, err
    assert from_hex == from_raw
    powers = [json.loads(line)["active_power_import"] for line in from_raw.splitlines()]
    assert powers == [1234, 99, 1193]


def test_both_runtimes_print_the_same_bytes():
    stream = b"".join(f for _, f in encoder.sample_frames()) + P1
    outs = [
        hanctl("decode", "--runtime", r, "-", stdin=stream)[1] for r in ("micropython", "cpython")
    ]
    assert outs[0] == outs[1] and outs[0].count("\n") == 10


def test_errors_flag_prints_rejections():
    bad = FRAME[:-3] + bytes([FRAME[-3] ^ 1]) + FRAME[-2:]
    stream = b"junk" + bad + OTHER + FRAME[:30]
    _, plain, _ = hanctl("decode", "-", stdin=stream)
    status, verbose, _ = hanctl("decode", "--errors", "-", stdin=stream)
    assert status == 0
    assert [json.loads(x)["active_power_import"] for x in plain.splitlines()] == [99]
    lines = [json.loads(x) for x in verbose.splitlines()]
    assert lines == [
        {"error": "noise", "detail": "4 bytes"},
        {"error": "checksum"},
        lines[2],
        {"error": "truncated"},
    ]
    assert lines[2]["active_power_import"] == 99


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
@pytest.mark.parametrize("form", ["raw", "hex"])
def test_each_frame_is_decoded_as_it_arrives(runtime, form):
    """`hanctl decode -` on a pipe: a frame written to it comes out as its JSON line while
    stdin is still open, as from a serial port that never closes."""
    proc = subprocess.Popen(
        [str(HANCTL), "decode", "--runtime", runtime, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        for frame, power in ((FRAME, 1234), (OTHER, 99)):
            proc.stdin.write(frame.hex().encode() + b"\n" if form == "hex" else frame)
            proc.stdin.flush()
            line = lines.get(timeout=60)  # queue.Empty: the frame waited for more input
            assert json.loads(line)["active_power_import"] == power
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert lines.empty()


def test_odd_hex_is_an_error_not_garbage():
    status, _, err = hanctl("decode", "-", stdin=b"7e a0 2")
    assert status == 2 and "odd number" in err


def test_bench_runs_and_reports_the_targets():
    status, out, err = hanctl("bench", "--rounds", "1")
    assert status == 0, err
    assert "Decoder as a HAN dongle loads it" in out and "Heap per List 3 frame" in out


def test_bench_whole_process_prints_both_processes():
    pytest.importorskip("han.autodecoder")
    status, out, err = hanctl("bench", "--rounds", "1", "--whole-process", "--repeat", "2")
    assert status == 0, err
    table, ciphered = out.split("# hanctl bench --whole-process", 1)[1].split("# Ciphered", 1)
    rows = [x for x in table.splitlines() if x.startswith("| ") and "µs" not in x]
    frames = len(bench.norwegian_frames()[0]) * 2
    assert len(rows) == 2 and all(r.endswith(f"| {frames} |") for r in rows), table
    assert "the frames per second into JSON that amshan does" in table
    # The ciphered pushes against dlms-cosem (a dev extra): both read the same values, or
    # the bench stops; each key's capture 2 x 10 times.
    if "Not run" not in ciphered:
        assert "as fast as dlms-cosem" in ciphered and "| 60 |" in ciphered, ciphered


BAD_CONFIG = (
    '{"wifi": [], "hostname": "h", "meter": {"baud": "auto", "parity": "auto", '
    '"invert": false}, "ntp": null, "destinations": [{"name": "a", "host": "127.0.0.1", '
    '"port": 1883, "tls": null, "topic": "t/a", "share": "fulll", "discovery": false, '
    '"user": "u", "pasword": "hunter2"}]}'
)


def test_config_validate_says_what_the_dongle_would(tmp_path):
    import rig

    path = tmp_path / "config.json"
    path.write_text(BAD_CONFIG)
    status, out, _ = hanctl("config", "validate", "--unix", str(path))
    assert status == 1
    problems = out.splitlines()
    assert any(p.startswith("destinations[0].share:") for p in problems)
    assert any(p.startswith("destinations[0].pasword: unknown key") for p in problems)
    assert "hunter2" not in out  # a secret is never echoed, even under a misspelt key

    # The dongle, given the same file, logs the very same lines and publishes nothing.
    dongle = rig.Dongle(tmp_path / "fs", BAD_CONFIG, "tcp://127.0.0.1:9").start()
    try:
        dongle.wait_log("safe state")
        logged = [x.split("config: ", 1)[1] for x in dongle.output if "hanport: config: " in x]
        assert logged == problems
    finally:
        dongle.stop()

    path.write_text(BAD_CONFIG.replace("fulll", "full").replace("pasword", "password"))
    status, out, _ = hanctl("config", "validate", "--unix", str(path))
    assert (status, out) == (0, f"{path}: valid (1 destination(s))\n")
    status, out, _ = hanctl("config", "validate", str(path))  # on a device: Wi-Fi, board
    assert status == 1 and out.startswith("wifi: is empty")


def test_each_command_says_which_firmware_it_checks_a_config_for_and_they_agree(tmp_path):
    import rig

    path = tmp_path / "config.json"
    path.write_text(json.dumps(rig.config()))  # no Wi-Fi networks, no board
    status, out, _ = hanctl("config", "validate", str(path))  # for a board, by default
    assert (status, out.splitlines()) == (
        1,
        [
            'wifi: is empty; add a network: [{"ssid": "home", "password": "..."}]',
            'board: missing; add the board\'s name, e.g. "esp32-devkit-tss721"',
        ],
    )
    for target in (["--target", "unix"], ["--unix"]):
        status, out, _ = hanctl("config", "validate", *target, str(path))
        assert (status, out) == (0, f"{path}: valid (0 destination(s))\n")
    # hanctl run's firmware takes the file too: it checks for the unix port.
    dongle = rig.Dongle(tmp_path / "fs", path.read_text(), "tcp://127.0.0.1:9").start()
    try:
        dongle.wait_log("running: 0 destination(s)")
    finally:
        dongle.stop()

    def help_of(*command):
        status, out, _ = hanctl(*command, "--help")
        assert status == 0
        return " ".join(out.split())

    for command in (("config", "validate"), ("config", "push")):
        text = help_of(*command)
        assert "(for a board unless --target unix)" in text and "{board,unix}" in text
    for command in (("install",), ("flash",)):
        assert "--config FILE config.json to install as well, checked for a board" in help_of(
            *command
        )
    assert "the firmware checks it for the unix port" in help_of("run")


def test_validate_push_and_install_refuse_what_the_dongle_refuses(tmp_path):
    """The size, depth and character rules of the dongle's load() hold in each
    command that checks a config, with the dongle's message, and no secret in it."""
    secret = "WIFISECRET-q8Zr"
    good = {
        "wifi": [{"ssid": "home", "password": "correct horse"}],
        "hostname": "hanport-1a2b3c",
        "board": "esp32-devkit-tss721",
        "destinations": [{"name": "a", "host": "h", "share": "full", "topic": "TOPIC"}],
    }
    text = json.dumps(good)
    cases = {
        "too big": (text + " " * 8192, "bytes is too big; a config is at most 8192 bytes"),
        "deep": ("[" * 4000 + "]" * 4000, "config.json: nests too deeply to read"),
        "tab": (text.replace("TOPIC", "han\tport"), "holds a control character (a tab"),
        "surrogate": (text.replace("TOPIC", "han\\udc00"), "holds a \\ud800-\\udfff escape"),
        "ffff": (text.replace("TOPIC", "han\\uffff"), "holds a control character, a nonchar"),
        "wifi text": (text.replace('{"ssid": "home", "password": "correct horse"}',
                                   f'"home", "{secret}"'), "wifi[1]: a text is not an object"),
        "ca outside": (text.replace('"topic"', '"tls": {"ca": "../ca.pem"}, "topic"'),
                       "tls.ca: \"../ca.pem\" is outside the dongle's folder"),
    }  # fmt: skip
    for case, (raw, message) in cases.items():
        path = tmp_path / "config.json"
        path.write_text(raw)
        for command in (
            ("config", "validate", str(path)),
            ("config", "push", "--port", str(tmp_path / "no-dongle"), str(path)),
            ("install", "--board", "esp32-devkit-tss721", "--port", "/nonexistent", "--config",
             str(path)),
        ):  # fmt: skip
            status, out, err = hanctl(*command)
            assert status == 1 and message in out, (case, command, out + err)
            assert secret not in out + err and "Traceback" not in err, (case, out + err)
