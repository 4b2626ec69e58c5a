"""`hanctl flash`: erase a board, write the official MicroPython image, install hanport.

The image is MicroPython's own build for the board's chip (hanport adds no C code), written
with esptool at the address the chip's ROM bootloader reads it from, as MicroPython's
download pages do it (erase, then write); then install.install() puts hanport, the board's
board.json and an optional config.json on it, as `hanctl install` does.

Boards are data (boards/<name>/board.json), read by boards.py.
"""

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from . import install
from .boards import IMAGE_OFFSET, BoardError, check_config, load_board

DEFAULT_BAUD = 460800  # what MicroPython's download pages use; 115200 if a cable is poor
# The generic image of each chip at https://micropython.org/download/<NAME>/.
GENERIC_IMAGE = {
    "esp32": "ESP32_GENERIC",
    "esp32s2": "ESP32_GENERIC_S2",
    "esp32c3": "ESP32_GENERIC_C3",
    "esp32s3": "ESP32_GENERIC_S3",
}
DOWNLOAD_URL = "https://micropython.org/download/{}/"
# ESP-IDF image format: every app and bootloader image starts with this byte.
IMAGE_MAGIC = 0xE9
# MicroPython's builds put the partition table at flash address 0x8000 (ESP-IDF's default);
# each entry starts with AA 50. Finding it tells the combined .bin from the app-only .app-bin
# (which belongs at 0x10000) and from the .uf2 some download pages also offer.
PARTITION_TABLE = 0x8000
PARTITION_MAGIC = b"\xaa\x50"
# Boards with native USB (S2, S3, C3) leave the bus on reset and come back as a new port.
PORT_RETURN_S = 10


def download_page(board):
    return DOWNLOAD_URL.format(board.get("micropython_board") or GENERIC_IMAGE[board["chip"]])


def esptool_commands(board, port, firmware, baud=DEFAULT_BAUD):
    """esptool's argument lists (v5 syntax) for erasing the flash and writing the image."""
    common = ["--chip", board["chip"], "--port", port, "--baud", str(baud)]
    offset = f"{IMAGE_OFFSET[board['chip']]:#x}"
    return [common + ["erase-flash"], common + ["write-flash", offset, str(firmware)]]


def check_image(board, firmware):
    """None when firmware looks like a combined MicroPython image for this board's offset,
    else what is wrong with it."""
    path = Path(firmware)
    if not path.is_file():
        return f"{firmware}: no such file"
    with path.open("rb") as f:
        head = f.read(1)
        f.seek(PARTITION_TABLE - IMAGE_OFFSET[board["chip"]])
        table = f.read(2)
    if head != bytes([IMAGE_MAGIC]) or table != PARTITION_MAGIC:
        return (
            f"{firmware}: not a whole MicroPython image for {board['chip']} (take the .bin "
            "file, not the .app-bin, .uf2 or .elf)"
        )
    return None


def register(subparsers):
    p = subparsers.add_parser(
        "flash",
        help="erase a board, write MicroPython, install hanport",
        description="Erase the board's flash, write the official MicroPython image with "
        "esptool, then install hanport (as `hanctl install` does).",
    )
    p.add_argument("--board", required=True, help="a folder name under boards/")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM3")
    p.add_argument("--firmware", metavar="FILE.bin", help="the MicroPython image (.bin)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="config.json to install as well, checked for a board (as `hanctl config validate`)",
    )
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="default %(default)s")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.set_defaults(run=run_command)


def run_command(args):
    try:
        board = load_board(args.board)
    except BoardError as err:
        return _fail(str(err))
    where = f"download it from {download_page(board)} and give it as --firmware FILE.bin"
    if not args.firmware:
        return _fail(f"no MicroPython image given for {board['chip']}: {where}")
    wrong = check_image(board, args.firmware)
    if wrong:
        return _fail(f"{wrong}; {where}")
    if args.config:
        problems = check_config(args.config, args.board)
        if problems:  # before the erase: the board's old setup still works
            for line in problems:
                print(line, file=sys.stderr)
            return _fail(f"{args.config} is not valid; nothing was erased")
    commands = esptool_commands(board, args.port, args.firmware, args.baud)
    if args.dry_run:
        for argv in commands:
            print("esptool " + shlex.join(argv))
        print(f"then install hanport for {args.board} on {args.port}")
        return 0
    for argv in commands:
        status = subprocess.run([sys.executable, "-m", "esptool", *argv]).returncode
        if status != 0:
            return _fail(
                f"esptool stopped (status {status}); if it could not connect, hold BOOT "
                "while pressing RESET and run hanctl flash again"
            )
    _wait_for_port(args.port)
    return install.install(args.board, args.port, config=args.config, out=print)


def _wait_for_port(port):
    # Best effort: a port that has not left yet is taken as back; install reports the rest.
    if not port.startswith("/dev/"):
        return  # COM ports: nothing to watch on the file system
    deadline = time.monotonic() + PORT_RETURN_S
    while not os.path.exists(port) and time.monotonic() < deadline:
        time.sleep(0.2)


def _fail(message):
    print(f"hanctl flash: {message}", file=sys.stderr)
    return 2
