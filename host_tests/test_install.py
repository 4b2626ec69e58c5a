"""`hanctl install` and `hanctl config push/pull` as an owner runs them (the installed
console script), against a virtual dongle: the real MicroPython unix port behind a pty, its
file system a folder checked here byte for byte."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hanctl import boards, install, page_assets, runtime

BIN = Path(sys.executable).parent
HANCTL = BIN / "hanctl"
MPREMOTE = BIN / "mpremote"
BOARD = "esp32-devkit-tss721"
CA = b"-----BEGIN CERTIFICATE-----\nMIIB (a test CA)\n-----END CERTIFICATE-----\n"


def hanctl(*args, env=None):
    proc = subprocess.run(
        [str(HANCTL), *args], capture_output=True, text=True, timeout=120, env=env
    )
    return proc.returncode, proc.stdout, proc.stderr


def board_config(tmp_path, **changes):
    """A config.json for a board (Wi-Fi, TLS with a CA file beside it), as bytes on disk."""
    cfg = {
        "hostname": "hanport-test",
        "board": BOARD,
        "wifi": [{"ssid": "home", "password": "wifi-secret-1"}],
        "destinations": [
            {
                "name": "broker",
                "host": "broker.local",
                "port": 8883,
                "user": "hanport",
                "password": "mqtt-secret-2",
                "share": "live",
                "tls": {"ca": "ca.pem"},
            }
        ],
        **changes,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg, indent=1) + "\n")
    (tmp_path / "ca.pem").write_bytes(CA)
    return path


@pytest.fixture
def firmware_copy(tmp_path, monkeypatch):
    """A copy of firmware/ that HANPORT_FIRMWARE points hanctl at; its build folder (one
    per source tree, under build/) is removed afterwards."""
    src = tmp_path / "firmware"
    shutil.copytree(runtime.firmware_dir(), src)
    monkeypatch.setenv("HANPORT_FIRMWARE", str(src))
    yield src
    shutil.rmtree(runtime.compile_firmware().resolve(), ignore_errors=True)
    shutil.rmtree(runtime.compile_firmware(march=dongle_march()).resolve(), ignore_errors=True)


def dongle_march():
    # The virtual dongle runs the stock 64-bit interpreter: install compiles gcm_native for
    # the machine code it loads (device.mpy_arch), x64.
    return runtime.host_march(runtime.stock_exe())


def lines_starting(out, word):
    return sorted(line.split()[1] for line in out.splitlines() if line.startswith(word))


def test_install_puts_every_module_the_boot_file_board_and_config(dongle, fs, tmp_path):
    config = board_config(tmp_path)
    status, out, err = hanctl(
        "install", "--board", BOARD, "--port", dongle.port, "--config", str(config)
    )
    assert status == 0, out + err
    build = runtime.compile_firmware(march=dongle_march())
    assert (build / "gcm_native.mpy").exists()
    # A virtual dongle is sys.platform "linux": it gets the unix hardware layer.
    expected = {p.name for p in build.glob("*.mpy")} - {"main.mpy", "hal_esp32.mpy"}
    assert "hal_unix.mpy" in expected and "dongle.mpy" in expected
    assert {p.name for p in fs.glob("*.mpy")} == expected
    for name in expected:
        assert (fs / name).read_bytes() == (build / name).read_bytes(), name
    assert (fs / "main.py").read_bytes() == (runtime.firmware_dir() / "main.py").read_bytes()
    board_json = boards.boards_dir() / BOARD / "board.json"
    assert (fs / "board.json").read_bytes() == board_json.read_bytes()
    assert (fs / "config.json").read_bytes() == config.read_bytes()
    assert (fs / "ca.pem").read_bytes() == CA
    # The owner's page as page_assets builds it (webapp/), streamed from flash as it is.
    assert (fs / "page.html.gz").read_bytes() == page_assets.build().read_bytes()
    owned = (fs / "hanport.files").read_text().split()
    assert sorted(owned) == sorted(
        ["/" + n for n in expected] + ["/main.py", "/board.json", "/page.html.gz"]
    )
    assert lines_starting(out, "copied") == sorted(
        [*expected, "main.py", "board.json", "config.json", "ca.pem", "page.html.gz"]
    )
    assert "secret" not in out + err  # file names and sizes, never contents


def test_installed_firmware_imports_on_the_dongle(dongle):
    assert hanctl("install", "--board", BOARD, "--port", dongle.port)[0] == 0
    proc = subprocess.run(
        [
            str(MPREMOTE),
            "connect",
            dongle.port,
            "exec",
            "import dongle, startup; print(startup.hal.NAME)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "unix"), proc.stderr


def test_a_reinstall_copies_only_the_changed_module(dongle, fs, firmware_copy):
    first = hanctl("install", "--board", BOARD, "--port", dongle.port)
    assert first[0] == 0, first
    all_files = lines_starting(first[1], "copied")
    with (firmware_copy / "crc16.py").open("a") as f:
        f.write("\n_REINSTALL_PROBE = 1\n")  # code, not a comment: the bytecode changes
    status, out, err = hanctl("install", "--board", BOARD, "--port", dongle.port)
    assert status == 0, out + err
    assert lines_starting(out, "copied") == ["crc16.mpy"]
    assert lines_starting(out, "unchanged") == sorted(set(all_files) - {"crc16.mpy"})
    assert (fs / "crc16.mpy").read_bytes() == (
        runtime.compile_firmware() / "crc16.mpy"
    ).read_bytes()


def test_a_module_hanport_dropped_is_removed_and_owner_files_stay(dongle, fs, firmware_copy):
    (fs / "state.json").write_text("{}")  # the dongle's own state
    (fs / "notes.mpy").write_bytes(b"M")  # the owner's, though it looks like a module
    assert hanctl("install", "--board", BOARD, "--port", dongle.port)[0] == 0
    (firmware_copy / "kamstrup.py").unlink()
    status, out, err = hanctl("install", "--board", BOARD, "--port", dongle.port)
    assert status == 0, out + err
    assert "removed   kamstrup.mpy" in out
    assert not (fs / "kamstrup.mpy").exists()
    assert "/kamstrup.mpy" not in (fs / "hanport.files").read_text()
    assert (fs / "state.json").read_text() == "{}"
    assert (fs / "notes.mpy").read_bytes() == b"M"


def test_new_code_drops_the_config_the_old_code_checked(dongle, fs, firmware_copy):
    (fs / "config.checked").write_text('{"sha256": "x", "version": "0.3.0", "config": {}}')
    assert hanctl("install", "--board", BOARD, "--port", dongle.port)[0] == 0
    assert not (fs / "config.checked").exists()
    (fs / "config.checked").write_text("{}")
    assert hanctl("install", "--board", BOARD, "--port", dongle.port)[0] == 0  # nothing new
    assert (fs / "config.checked").exists()
    with (firmware_copy / "crc16.py").open("a") as f:
        f.write("\nEXTRA = 1\n")
    status, out, err = hanctl("install", "--board", BOARD, "--port", dongle.port)
    assert status == 0, out + err
    assert "removed   config.checked" in out and not (fs / "config.checked").exists()


def test_frozen_installs_only_the_boot_file_and_board_and_removes_old_modules(dongle, fs):
    # A board whose image has hanport frozen in: modules on its file system would come
    # first on sys.path and load into the heap again.
    assert hanctl("install", "--board", BOARD, "--port", dongle.port)[0] == 0
    assert (fs / "dongle.mpy").exists()
    status, out, err = hanctl("install", "--board", BOARD, "--port", dongle.port, "--frozen")
    assert status == 0, out + err
    assert not list(fs.glob("*.mpy"))
    assert (fs / "main.py").exists() and (fs / "board.json").exists()
    assert "removed   dongle.mpy" in out


def test_install_is_callable_for_flash(dongle, fs):
    lines = []
    assert install.install(BOARD, dongle.port, out=lines.append) == 0
    assert lines[-2].startswith(f"installed on {dongle.port}: ")
    assert (fs / "dongle.mpy").is_file()


def test_an_invalid_config_installs_nothing(dongle, fs, tmp_path):
    config = board_config(tmp_path, wifi=[])
    status, out, _ = hanctl(
        "install", "--board", BOARD, "--port", dongle.port, "--config", str(config)
    )
    assert status == 1
    assert "wifi" in out and "nothing was installed" in out
    assert list(fs.iterdir()) == []


def test_an_unknown_board_or_port_is_a_message_not_a_traceback(tmp_path):
    status, out, err = hanctl("install", "--board", "esp8266", "--port", "/dev/ttyUSB9")
    assert status == 1 and "Traceback" not in err
    assert all(name in out for name in boards.board_names())
    status, out, err = hanctl("install", "--board", BOARD, "--port", str(tmp_path / "ttyUSB9"))
    assert status == 1 and "no such serial port" in out and "Traceback" not in err


def test_config_push_then_pull_gives_the_same_bytes(dongle, fs, tmp_path):
    config = board_config(tmp_path)
    status, out, err = hanctl("config", "push", "--port", dongle.port, str(config))
    assert status == 0, out + err
    assert (fs / "config.json").read_bytes() == config.read_bytes()
    assert (fs / "ca.pem").read_bytes() == CA
    pulled = tmp_path / "pulled.json"
    status, out, err = hanctl("config", "pull", "--port", dongle.port, str(pulled))
    assert status == 0, out + err
    assert pulled.read_bytes() == config.read_bytes()
    assert "secret" not in out + err


def test_an_invalid_config_is_not_pushed(dongle, fs, tmp_path):
    (fs / "config.json").write_bytes(b'{"the": "config that works"}')
    bad = board_config(tmp_path)
    bad.write_text(bad.read_text().replace('"port": 8883', '"port": "8883"'))
    status, out, _ = hanctl("config", "push", "--port", dongle.port, str(bad))
    assert status == 1
    assert 'destinations[0].port: "8883" is not a port' in out  # the validator's own words
    assert "not pushed" in out
    assert (fs / "config.json").read_bytes() == b'{"the": "config that works"}'


def test_push_checks_for_a_board_unless_told_the_unix_port_and_refuses_an_oversize_file(
    dongle, fs, tmp_path
):
    # What `hanctl run` runs on: no Wi-Fi networks, no board (rig.config's shape).
    unix = tmp_path / "unix.json"
    unix.write_text(json.dumps({"hostname": "hanport-test", "wifi": [], "destinations": []}))
    status, out, _ = hanctl("config", "push", "--port", dongle.port, str(unix))
    assert status == 1 and out.startswith("wifi: is empty") and "not pushed" in out
    assert not (fs / "config.json").exists()
    status, out, err = hanctl(
        "config", "push", "--target", "unix", "--port", dongle.port, str(unix)
    )
    assert status == 0, out + err
    assert (fs / "config.json").read_bytes() == unix.read_bytes()

    # Valid JSON, but longer than the dongle reads (firmware/config.py MAX_BYTES).
    big = tmp_path / "big.json"
    big.write_text(board_config(tmp_path).read_text() + " " * 8192)
    status, out, _ = hanctl("config", "push", "--port", dongle.port, str(big))
    assert status == 1 and "not pushed" in out
    assert f"big.json: {big.stat().st_size} bytes is too big; a config is at most 8192" in out
    assert (fs / "config.json").read_bytes() == unix.read_bytes()


def test_pull_from_a_dongle_without_config_says_so(dongle, tmp_path):
    status, out, _ = hanctl("config", "pull", "--port", dongle.port, str(tmp_path / "c.json"))
    assert status == 1 and "has no /config.json" in out
    assert not (tmp_path / "c.json").exists()


def test_setup_key_shows_the_setup_mode_password_the_dongle_keeps(dongle, fs):
    status, out, _ = hanctl("config", "setup-key", "--port", dongle.port)
    assert status == 1 and "no setup-mode password yet" in out
    (fs / "setup.json").write_text('{"key": "k7mqx2vp9ahe"}')  # as firmware/portal.py keeps it
    status, out, err = hanctl("config", "setup-key", "--port", dongle.port)
    assert status == 0, out + err
    assert out.strip().endswith("password k7mqx2vp9ahe")
