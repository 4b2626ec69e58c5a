"""A dongle's file system over its serial port, through mpremote's own transport.

connect(port) enters the raw REPL (mpremote's SerialTransport: the protocol stays
mpremote's) and yields a Device that reads, writes, hashes and lists files. The port is a
real one (/dev/ttyUSB0) or a virtual dongle's pty (hanctl virtual-dongle).

Also `hanctl config push` and `hanctl config pull` (registered by config_cmd.py). The
config holds Wi-Fi and MQTT passwords: output names files and sizes, never contents.
"""

import contextlib
import hashlib
import io
import json
import os
import posixpath
from pathlib import Path

from . import runtime

CONFIG = "/config.json"
SETUP_KEY = "/setup.json"  # firmware/portal.py KEY_FILE: setup mode's Wi-Fi password
# Bytes per raw-REPL command when moving a file. mpremote sends each chunk as the repr of
# a bytes literal (up to 4x bigger) that the device compiles: 1 KB keeps that under ~8 KB
# of a 96 KB heap and takes a quarter of the round trips of mpremote's default 256.
CHUNK = 1024
# s without a byte from the device before a read gives up (pyserial's timeout): without
# one, mpremote waits forever on a pty that nothing answers.
READ_TIMEOUT = 2
# s for the REPL to answer at all (mpremote's own default): a board's boot.py may run first.
ANSWER_TIMEOUT = 10

# Hashes several files in one round trip; binascii, as not every port has bytes.hex().
# The default arguments are looked up when this runs, so a build without hashlib.sha256
# fails here, and sha256_many() falls back to reading the files.
_HASHES = """\
import hashlib, binascii
def _hanport_sha256(p, sha256=hashlib.sha256, hexlify=binascii.hexlify):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = sha256()
    b = bytearray(512)
    m = memoryview(b)
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return hexlify(h.digest()).decode()
"""

# os.rename replaces the target on every file system MicroPython has (its FAT removes the
# old file first); the fallback is for a port that refuses. A cut that leaves only the .tmp
# is taken back at boot by the firmware (store.recover), then checked.
_REPLACE = """\
import os
try:
    os.rename({tmp!r}, {path!r})
except OSError:
    os.remove({path!r})
    os.rename({tmp!r}, {path!r})
"""


# A cut inside FAT's rename (MicroPython removes the old file, then renames) can leave only
# path + ".tmp", whole: the only copy. It is renamed back before a new .tmp is written over
# it, as the firmware's store.recover takes it back at boot.
_TAKE_BACK = """\
import os
try:
    os.stat({path!r})
except OSError:
    try:
        os.rename({tmp!r}, {path!r})
    except OSError:
        pass  # no .tmp either: a first write
"""


class DeviceError(Exception):
    """The port is missing, busy or silent, or the device refused an operation."""


class Device:
    """A connected dongle in the raw REPL. Paths are the device's ("/config.json")."""

    def __init__(self, transport):
        self.transport = transport

    def exec(self, code):
        """Run code on the device; its output as bytes. DeviceError with the device's
        last error line when it raises."""
        from mpremote.transport import TransportExecError

        try:
            return self.transport.exec(code)
        except TransportExecError as err:
            lines = err.error_output.strip().splitlines()
            raise DeviceError(lines[-1] if lines else "the device raised an error") from None

    def eval(self, expression):
        return self.transport.eval(expression)

    def platform(self):
        """sys.platform: "esp32" on a board, "linux" on the virtual dongle."""
        return self.eval("__import__('sys').platform")

    def mpy_version(self):
        """The .mpy format version the device loads (low bits of sys.implementation._mpy),
        0 when it does not say."""
        return self.eval("getattr(__import__('sys').implementation, '_mpy', 0) & 0xff")

    def mpy_arch(self):
        """The machine code the device loads from .mpy files, as mpy-cross -march names it
        (runtime.MARCH: "xtensawin" on an ESP32), "" for none (bits 10.. of
        sys.implementation._mpy, py/persistentcode.h MPY_FEATURE_ARCH)."""
        arch = self.eval("getattr(__import__('sys').implementation, '_mpy', 0) >> 10")
        return runtime.MARCH.get(arch, "")

    def read_file(self, path):
        """The file's bytes; FileNotFoundError when there is none."""
        return bytes(self.transport.fs_readfile(path, chunk_size=CHUNK))

    def write_file(self, path, data):
        """Write data to path so that a cut leaves the old file or the new one: the bytes go
        to path + ".tmp", which is then renamed over path (as firmware/config.py writes).
        Missing parent folders are made."""
        parent = posixpath.dirname(path)
        if parent not in ("", "/"):
            self.makedirs(parent)
        tmp = path + ".tmp"
        self.exec(_TAKE_BACK.format(tmp=tmp, path=path))
        self.transport.fs_writefile(tmp, bytes(data), chunk_size=CHUNK)
        self.exec(_REPLACE.format(tmp=tmp, path=path))

    def sha256(self, path):
        """Hex SHA-256 of the file, computed on the device; None when there is no file."""
        return self.sha256_many([path])[path]

    def sha256_many(self, paths):
        """{path: hex SHA-256 or None when missing}, in one round trip when the device has
        hashlib; else mpremote reads each file and hashes it here."""
        paths = list(paths)
        try:
            self.exec(_HASHES)
        except DeviceError:  # no hashlib (or binascii) in this build
            return {p: self._sha256_by_reading(p) for p in paths}
        hashes = self.eval(f"[_hanport_sha256(p) for p in {paths!r}]")
        self.exec("del _hanport_sha256")
        return dict(zip(paths, hashes, strict=True))

    def _sha256_by_reading(self, path):
        try:
            return hashlib.sha256(self.read_file(path)).hexdigest()
        except FileNotFoundError:
            return None

    def listdir(self, path="/"):
        """Names in the folder path."""
        return [entry.name for entry in self.transport.fs_listdir(path)]

    def mkdir(self, path):
        """Make the folder path unless it is there."""
        try:
            self.transport.fs_mkdir(path)
        except FileExistsError:
            pass

    def makedirs(self, path):
        """Make the folder path and its missing parents."""
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            self.mkdir("/" + "/".join(parts[:i]))

    def remove(self, path):
        """Remove the file path; a missing one is not an error."""
        try:
            self.transport.fs_rmfile(path)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def connect(port, soft_reset=True, timeout=ANSWER_TIMEOUT):
    """A Device on port in the raw REPL, soft-reset first (a clean interpreter: whatever ran
    is stopped); DeviceError with what to check when that fails, after timeout s of
    silence."""
    import serial
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    if not os.path.exists(port) and port.startswith("/"):
        raise DeviceError(
            f"{port}: no such serial port; is the dongle plugged in? "
            "(ls /dev/ttyUSB* /dev/ttyACM*, or the path hanctl virtual-dongle printed)"
        )
    try:
        transport = SerialTransport(port, baudrate=115200, timeout=READ_TIMEOUT)
    except (TransportError, serial.SerialException, OSError) as err:
        raise DeviceError(
            f"{port}: cannot be opened ({err}); is another program (mpremote, a serial "
            "monitor) using it, or may this user not open it (group dialout)?"
        ) from None
    try:
        # mpremote prints what it got when the REPL does not answer: device output, which
        # is not for the owner's terminal (nor a log) unasked.
        with contextlib.redirect_stdout(io.StringIO()):
            transport.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout)
    except (TransportError, serial.SerialException, OSError) as err:
        transport.close()
        raise DeviceError(
            f"{port}: no MicroPython REPL answers ({err}); is MicroPython on the board "
            "(hanctl flash), and is the port the dongle's?"
        ) from None
    try:
        yield Device(transport)
    finally:
        # A link that broke mid-way must not hide the error that says so.
        with contextlib.suppress(OSError):  # serial.SerialException is an OSError
            transport.exit_raw_repl()
        with contextlib.suppress(OSError):
            transport.close()


def config_files(config_path, cfg):
    """[(local Path, device path)] of a validated config: config.json itself, then the TLS
    CA files it names (paths relative to the config file, as `hanctl run` reads them) that
    exist. Missing CA files are left out: (files, [names of the missing ones])."""
    config_path = Path(config_path)
    files = [(config_path, CONFIG)]
    missing = []
    for dest in cfg["destinations"]:
        ca = (dest.get("tls") or {}).get("ca")
        if not ca:
            continue
        local = config_path.parent / ca
        if local.is_file():  # the dongle opens ca from its root, where config.json is
            files.append((local, posixpath.normpath("/" + ca.lstrip("/"))))
        else:
            missing.append(ca)
    return files, missing


def check_config(path, target="board"):
    """(raw bytes, validated cfg, problems) of the config file at path, checked by the
    firmware's own validator as `hanctl config validate --target` does: for a board (Wi-Fi
    networks and a board name needed), or for the unix port ("unix", neither)."""
    runtime.use_firmware_in_cpython()
    import config  # firmware/config.py

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        return None, None, [f"{path}: cannot be read ({err.strerror}); give a config.json"]
    cfg, problems = config.parse(raw, path.name, unix=target == "unix")
    return raw, cfg, problems


def push_command(args):
    raw, cfg, problems = check_config(args.file, args.target)
    if cfg is None or problems:
        for problem in problems:
            print(problem)  # the validator never quotes a secret
        print(f"{args.file}: not pushed; the dongle keeps its config.json")
        return 1
    files, missing = config_files(args.file, cfg)
    try:
        with connect(args.port) as dev:
            for local, remote in files:
                data = raw if remote == CONFIG else local.read_bytes()
                dev.write_file(remote, data)
                print(f"{local} -> {args.port}:{remote} ({len(data)} bytes)")
    except (DeviceError, OSError) as err:
        print(f"hanctl config push: {err}")
        return 1
    for ca in missing:
        print(f"warning: {ca} (named by tls.ca) is not next to {args.file}; not pushed")
    print("restart the dongle (its reset button) to use the new config")
    return 0


def pull_command(args):
    try:
        with connect(args.port) as dev:
            data = dev.read_file(CONFIG)
    except FileNotFoundError:
        print(f"hanctl config pull: the dongle on {args.port} has no {CONFIG}")
        return 1
    except (DeviceError, OSError) as err:
        print(f"hanctl config pull: {err}")
        return 1
    out = Path(args.file)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as err:
        print(f"hanctl config pull: {out}: cannot be written ({err.strerror})")
        with contextlib.suppress(OSError):
            tmp.unlink()
        return 1
    print(f"{args.port}:{CONFIG} -> {out} ({len(data)} bytes)")
    return 0


def setup_key_command(args):
    """The setup-mode access point's password, as the dongle made and keeps it: shown to the
    owner, who has the dongle on USB (the serial log shows it too, when setup mode starts)."""
    try:
        with connect(args.port) as dev:
            data = dev.read_file(SETUP_KEY)
    except FileNotFoundError:
        print(
            f"hanctl config setup-key: the dongle on {args.port} has no setup-mode password "
            "yet: it makes one the first time setup mode starts (no valid config.json, the "
            "button held at boot, or no Wi-Fi joined for 5 minutes)"
        )
        return 1
    except (DeviceError, OSError) as err:
        print(f"hanctl config setup-key: {err}")
        return 1
    try:
        key = json.loads(data)["key"]
    except (ValueError, KeyError, TypeError):
        print(f"hanctl config setup-key: {SETUP_KEY} on the dongle is not what it writes")
        return 1
    print(f"setup-mode Wi-Fi hanport-XXXXXX (the last 6 hex digits of the MAC): password {key}")
    return 0
