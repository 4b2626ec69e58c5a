"""The boards hanport knows, as data: boards/<name>/board.json, read and checked here for
`hanctl flash`, `hanctl install` and the config wizard."""

import json
from pathlib import Path

from . import runtime

# Where MicroPython's combined image (bootloader, partition table, app) goes: the address the
# ROM bootloader loads the second-stage bootloader from. The download pages' esptool lines:
# esp32 and esp32s2 at 0x1000, esp32c3 and esp32s3 at 0x0.
IMAGE_OFFSET = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32c3": 0x0, "esp32s3": 0x0}


class BoardError(ValueError):
    """A board name hanport does not know, or a board.json that contradicts its chip."""


def boards_dir():
    return runtime.repo_root() / "boards"


def board_names():
    return sorted(p.parent.name for p in boards_dir().glob("*/board.json"))


def load_board(name):
    """The board.json of boards/<name> as a dict; BoardError when it is unknown or wrong."""
    path = boards_dir() / name / "board.json"
    if not path.is_file():
        raise BoardError(f"unknown board {name!r}; use one of: {', '.join(board_names())}")
    board = json.loads(path.read_text())
    chip = board.get("chip")
    if chip not in IMAGE_OFFSET:
        raise BoardError(f"{path}: chip {chip!r} is not one of {', '.join(IMAGE_OFFSET)}")
    offset = board.get("flash_offset")
    if not isinstance(offset, str) or int(offset, 16) != IMAGE_OFFSET[chip]:
        # A wrong address leaves a board whose ROM finds no bootloader: refuse, do not guess.
        raise BoardError(
            f"{path}: flash_offset {offset!r} is wrong for {chip}; "
            f"MicroPython's image goes at {IMAGE_OFFSET[chip]:#x}"
        )
    return board


def check_config(path, board_name):
    """Problems of the config.json that install will copy, as the dongle would state them."""
    runtime.use_firmware_in_cpython()
    import config  # firmware/config.py

    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        return [f"{path}: cannot be read ({err.strerror})"]
    cfg, problems = config.parse(raw, Path(path).name)
    if cfg is not None and cfg["board"] != board_name:
        problems = [f'board: "{cfg["board"]}" in {path}, but --board is {board_name}']
    return problems
