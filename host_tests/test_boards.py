"""boards/: every board.json holds what hal_esp32 and `hanctl flash` read, with values the
chip can have; every manifest.py freezes exactly the firmware a board runs from flash."""

import json
import os
from pathlib import Path

import pytest

from firmware_graph import reached

ROOT = Path(__file__).resolve().parents[1]
BOARDS = sorted(p.parent for p in (ROOT / "boards").glob("*/board.json"))
FIRMWARE = ROOT / "firmware"
# The boot file (run as source), the unix port's HAL, and gcm's machine code: compiled for
# the device's architecture by hanctl install (runtime.NATIVE_MODULES); a manifest is also
# frozen into the unix model, whose build gives mpy-cross no -march. An image with hanport
# frozen in runs gcm's bytecode.
NOT_FROZEN = {"main", "hal_unix", "hal_unix_wifi", "gcm_native"}

# Per chip: where MicroPython's image goes (the esptool lines of micropython.org/download/
# ESP32_GENERIC, _S2, _C3, _S3), its generic image, the UARTs a meter may use (UART0 is the
# REPL console; hal_esp32 gives no TX pin, and a classic ESP32's UART1 defaults its TX to
# flash pin GPIO10), the highest GPIO, and the GPIOs wired to the SPI flash (datasheets: ESP32 6-11,
# ESP32-S2/S3 26-32, ESP32-C3 12-17), which a board must not use.
CHIPS = {
    "esp32": ("0x1000", "ESP32_GENERIC", (2,), 39, range(6, 12)),
    "esp32s2": ("0x1000", "ESP32_GENERIC_S2", (1,), 46, range(26, 33)),
    "esp32c3": ("0x0", "ESP32_GENERIC_C3", (1,), 21, range(12, 18)),
    "esp32s3": ("0x0", "ESP32_GENERIC_S3", (1, 2), 48, range(26, 33)),
}


def test_the_issues_boards_are_there():
    by_name = {b.name: json.loads((b / "board.json").read_text()) for b in BOARDS}
    assert by_name["esp32-devkit-tss721"]["uart"] == 2
    assert by_name["esp32-devkit-tss721"]["pins"]["HAN_RX"] == 16
    assert by_name["esp32c3-reader"]["pins"]["HAN_RX"] == 7
    s2 = by_name["esp32s2-amsleser"]
    assert s2["pins"] == {"HAN_RX": 16, "LED_STATUS": 13, "LED_AUX": 14, "BUTTON": 0}
    assert s2["led_active_low"] is True


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.name)
def test_board_json_has_valid_values(board):
    b = json.loads((board / "board.json").read_text())
    assert b["name"] == board.name  # hal_esp32.board() compares it with the config's board
    offset, image, uarts, top_gpio, flash_pins = CHIPS[b["chip"]]
    assert b["flash_offset"] == offset
    assert b["micropython_board"] == image
    assert b["uart"] in uarts
    assert {"HAN_RX", "LED_STATUS"} <= set(b["pins"])
    for function, gpio in b["pins"].items():
        assert function.isupper(), "pins are named by function, e.g. HAN_RX"
        assert type(gpio) is int and 0 <= gpio <= top_gpio, function
        assert gpio not in flash_pins, f"{function} on GPIO{gpio} is a flash pin"
    assert len(set(b["pins"].values())) == len(b["pins"]), "two functions on one pin"
    assert type(b["led_active_low"]) is bool and type(b["han_rx_inverted"]) is bool
    assert b["description"] and b["notes"]


def test_flash_reads_the_same_offsets():
    from hanctl import boards

    for board in BOARDS:
        b = boards.load_board(board.name)
        assert f"{boards.IMAGE_OFFSET[b['chip']]:#x}" == CHIPS[b["chip"]][0]


def run_manifest(path, port_dir="/mpy/ports/esp32"):
    """The files `path` freezes, as MicroPython's tools/manifestfile.py resolves them:
    $(...) variables substituted, relative paths from the manifest's folder (it chdirs
    there while the manifest runs). The port's manifests are recorded, ours followed."""
    variables = {
        "MPY_DIR": "/mpy",
        "PORT_DIR": port_dir,
        "BOARD_DIR": port_dir + "/boards/ESP32_GENERIC",
        "MPY_LIB_DIR": "/mpy/lib/micropython-lib",
    }
    included, frozen = [], []

    def resolve(p):
        for name, value in variables.items():
            p = p.replace(f"$({name})", value)
        return os.path.abspath(p)

    def include(p, **kwargs):
        p = resolve(p)
        if p.startswith("/mpy/"):
            included.append(p)
        else:
            _exec(Path(p))

    def module(p, base_path=".", opt=None):
        assert p.endswith(".py")
        frozen.append((Path(resolve(base_path)) / p, p, opt))

    def package(p, files=None, base_path=".", opt=None):
        raise AssertionError("a board freezes modules, not packages")

    def freeze(p, script=None, opt=None):
        raise AssertionError("module() names each file")

    def _exec(p):
        api = {"include": include, "module": module, "package": package, "freeze": freeze}
        here = os.getcwd()
        os.chdir(p.parent)
        try:
            exec(compile(p.read_text(), str(p), "exec"), api)
        finally:
            os.chdir(here)

    _exec(path)
    return included, frozen


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.name)
def test_manifest_freezes_every_firmware_module_but_the_boot_file(board):
    included, frozen = run_manifest(board / "manifest.py")
    assert included == ["/mpy/ports/esp32/boards/manifest.py"]  # asyncio, ntptime, ...
    for source, target, opt in frozen:
        assert source.is_file(), source
        assert source.parent == FIRMWARE and target == source.name  # imported by bare name
        assert opt == 3
    names = sorted(target for _, target, _ in frozen)
    assert names == sorted(f"{m}.py" for m in bootable() - NOT_FROZEN)


def bootable():
    """Every firmware module the boot file can reach, by imports at module level or inside
    functions (the quirks, p1, the decryption, marks, discovery and config load late)."""
    return reached("main")


def test_what_the_boot_reaches_is_the_dongle_not_the_host_tools():
    reached = bootable()
    assert {"startup", "dongle", "decoder", "hal_esp32", "marks", "security", "p1"} <= reached
    assert {"tariff", "accounting"} <= reached  # with a "tariff" in the config


def test_manifest_check_can_fail(tmp_path):
    board = tmp_path / "boards" / "x"
    board.mkdir(parents=True)
    (board / "manifest.py").write_text('module("nosuch.py", base_path="../../firmware")\n')
    _, frozen = run_manifest(board / "manifest.py")
    assert not frozen[0][0].is_file()
