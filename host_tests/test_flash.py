"""`hanctl flash`: the esptool commands for every board, checked against esptool's own
parser (no device needed to parse), and the messages an owner sees before anything runs."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import esptool
import pytest

from hanctl import boards, flash

HANCTL = Path(sys.executable).parent / "hanctl"
# Board, chip, offset: the esptool lines of micropython.org/download/ESP32_GENERIC (0x1000),
# ESP32_GENERIC_S2 (0x1000) and ESP32_GENERIC_C3 (0x0).
EXPECTED = [
    ("esp32-devkit-tss721", "esp32", "0x1000"),
    ("esp32c3-reader", "esp32c3", "0x0"),
    ("esp32s2-amsleser", "esp32s2", "0x1000"),
]


def image(path, offset):
    """A file shaped like MicroPython's combined image: the ESP image magic at its start,
    the partition table's first entry where flash address 0x8000 falls."""
    data = bytearray(0x9000)
    data[0] = 0xE9
    data[0x8000 - offset : 0x8000 - offset + 2] = b"\xaa\x50"
    path.write_bytes(bytes(data))
    return path


def hanctl(*args):
    proc = subprocess.run([str(HANCTL), *args], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def esptool_accepts(argv, capsys):
    """Whether esptool's own command line accepts argv, through its documented Python entry
    esptool.main(argv), without a device: `--help` after the command makes esptool parse
    and convert the global options (chip, port, baud) and the command's name and options,
    then print the command's help instead of connecting."""
    capsys.readouterr()
    try:
        esptool.main([*argv, "--help"])
    except SystemExit as stop:  # main() re-raises only a non-zero exit
        return False, capsys.readouterr().err + f" (exit {stop.code})"
    out = capsys.readouterr().out
    return "Usage: " in out, out


def test_the_boards_are_the_expected_ones():
    assert boards.board_names() == [name for name, _, _ in EXPECTED]


@pytest.mark.parametrize("name,chip,offset", EXPECTED)
def test_commands_erase_then_write_at_the_chips_offset(tmp_path, name, chip, offset):
    fw = image(tmp_path / "fw.bin", int(offset, 16))
    commands = flash.esptool_commands(boards.load_board(name), "/dev/ttyUSB7", fw)
    common = ["--chip", chip, "--port", "/dev/ttyUSB7", "--baud", "460800"]
    assert commands == [common + ["erase-flash"], common + ["write-flash", offset, str(fw)]]


@pytest.mark.parametrize("name,chip,offset", EXPECTED)
def test_esptool_accepts_the_commands(tmp_path, capsys, name, chip, offset):
    fw = image(tmp_path / "fw.bin", int(offset, 16))
    erase, write = flash.esptool_commands(boards.load_board(name), "COM3", fw, baud=115200)
    accepted, out = esptool_accepts(erase, capsys)
    assert accepted and " erase-flash [OPTIONS]" in out, out
    accepted, out = esptool_accepts(write, capsys)
    assert accepted and " write-flash [OPTIONS]" in out, out


def test_esptool_refuses_a_wrong_name(capsys):
    assert esptool_accepts(["--chip", "esp32", "erase-flash"], capsys)[0]
    for wrong in (
        ["--chip", "esp32", "--baudrate", "9600", "erase-flash"],
        ["--chip", "esp32c9", "erase-flash"],
        ["--chip", "esp32", "--baud", "fast", "erase-flash"],
        ["--chip", "esp32", "erase-flash-all"],
        ["--chip", "esp32", "write-flash", "--compres", "0x0", "fw.bin"],
    ):
        accepted, out = esptool_accepts(wrong, capsys)
        assert not accepted, wrong


@pytest.mark.parametrize("name,chip,offset", EXPECTED)
def test_dry_run_prints_the_commands(tmp_path, name, chip, offset):
    fw = image(tmp_path / "fw.bin", int(offset, 16))
    status, out, err = hanctl(
        "flash", "--board", name, "--port", "/dev/ttyACM0", "--firmware", str(fw), "--dry-run"
    )
    assert status == 0, err
    lines = out.splitlines()
    commands = flash.esptool_commands(boards.load_board(name), "/dev/ttyACM0", fw)
    assert lines[:2] == ["esptool " + shlex.join(argv) for argv in commands]
    assert f"write-flash {offset} {fw}" in lines[1]
    assert lines[2] == f"then install hanport for {name} on /dev/ttyACM0"


@pytest.mark.parametrize(
    "name,page",
    [("esp32c3-reader", "ESP32_GENERIC_C3"), ("esp32-devkit-tss721", "ESP32_GENERIC")],
)
def test_missing_firmware_says_where_to_download_it(name, page):
    status, out, err = hanctl("flash", "--board", name, "--port", "/dev/ttyUSB0")
    assert status != 0 and out == ""
    assert f"https://micropython.org/download/{page}/" in err
    assert "--firmware" in err


def test_a_firmware_file_that_is_not_there(tmp_path):
    missing = tmp_path / "ESP32_GENERIC_S2-v1.24.bin"
    status, out, err = hanctl(
        "flash", "--board", "esp32s2-amsleser", "--port", "x", "--firmware", str(missing)
    )
    assert status != 0 and out == ""
    assert f"{missing}: no such file" in err
    assert "https://micropython.org/download/ESP32_GENERIC_S2/" in err


def test_an_app_only_or_uf2_image_is_refused(tmp_path):
    app = tmp_path / "fw.app-bin"
    app.write_bytes(b"\xe9" + bytes(0x9000))  # an app image: no partition table at 0x8000
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(b"UF2\n" + bytes(0x9000))
    board = boards.load_board("esp32-devkit-tss721")
    for wrong in (app, uf2):
        assert "not a whole MicroPython image" in flash.check_image(board, wrong)
    # The same bytes shifted for a 0x0 chip are no image for a 0x1000 one.
    assert flash.check_image(board, image(tmp_path / "c3.bin", 0x0))


def test_an_invalid_config_stops_before_the_erase(tmp_path):
    fw = image(tmp_path / "fw.bin", 0x1000)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"hostname": "hanport-1", "board": "esp32c3-reader"}))
    argv = ["flash", "--board", "esp32-devkit-tss721", "--port", "p", "--firmware", str(fw)]
    status, out, err = hanctl(*argv, "--config", str(cfg), "--dry-run")
    assert status != 0 and out == ""
    assert "wifi: missing" in err and "nothing was erased" in err
    cfg.write_text(
        json.dumps({"hostname": "h", "board": "esp32c3-reader", "wifi": [{"ssid": "a"}]})
    )
    status, out, err = hanctl(*argv, "--config", str(cfg), "--dry-run")
    assert status != 0 and "--board is esp32-devkit-tss721" in err


def test_unknown_board_lists_the_known_ones():
    status, _, err = hanctl("flash", "--board", "esp8266", "--port", "p", "--dry-run")
    assert status != 0 and "esp32c3-reader" in err


def test_a_board_json_with_a_wrong_offset_is_refused(tmp_path, monkeypatch):
    board = tmp_path / "c3-wrong"
    board.mkdir()
    (board / "board.json").write_text(json.dumps({"chip": "esp32c3", "flash_offset": "0x1000"}))
    monkeypatch.setattr(boards, "boards_dir", lambda: tmp_path)
    with pytest.raises(boards.BoardError, match="goes at 0x0"):
        boards.load_board("c3-wrong")


def test_esptool_really_runs_and_a_failure_stops_before_install(tmp_path):
    fw = image(tmp_path / "fw.bin", 0x1000)
    port = tmp_path / "ttyUSB9"  # no device: esptool itself reports it, nothing is installed
    status, out, err = hanctl(
        "flash", "--board", "esp32-devkit-tss721", "--port", str(port), "--firmware", str(fw)
    )
    assert status == 2
    assert f"Could not open {port}" in out + err
    assert "esptool stopped (status 2)" in err
