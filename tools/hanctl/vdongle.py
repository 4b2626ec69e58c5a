"""`hanctl virtual-dongle --fs DIR`: a dongle without hardware, for mpremote and hanctl.

The real MicroPython unix port runs behind a pseudo-terminal, its filesystem root being DIR
(mp/vdongle_root.py mounts it; the host's / is out of reach). The pty's path, printed on
the first line, is the dongle's serial port: `mpremote connect PATH fs ls`, `hanctl install
--port PATH`, `hanctl config push --port PATH` work on it as on /dev/ttyUSB0.

The 1.29 unix port already speaks the raw REPL and raw-paste, so this module only carries
bytes and plays the parts of a board the unix port lacks:
- soft reset: Ctrl-D at an empty (raw) REPL ends the unix process, where a board reboots.
  A fresh interpreter is started, so no state survives, announced as a board does
  ("MPY: soft reboot") and brought back into the raw REPL if it was in it.
- power-on: the interpreter's banner is not shown, as a board booted long ago shows
  nothing to a new connection. boot.py and main.py are not run (as after a soft reset
  in the raw REPL), so installed firmware waits for `exec`, never starts by itself.
- Ctrl-C: a board turns it into KeyboardInterrupt in running code; here it becomes a
  SIGINT to the interpreter, which the unix port turns into the same.

Two ptys: the public one (its master here, its path given to mpremote) and the
interpreter's own (its stdio): the unix port's REPL needs a terminal.
"""

import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

from . import runtime

BOOT_SCRIPT = runtime.MP_DIR / "vdongle_root.py"
SOFT_REBOOT = b"MPY: soft reboot\r\n"  # ESP32 port, pyexec.c: what mpremote waits for
PROMPT = b">>> "  # the unix REPL's first prompt: it reads the pty from now on
CTRL_A, CTRL_B, CTRL_C = 0x01, 0x02, 0x03  # raw REPL, friendly REPL, interrupt
# How long (s) interrupted code may take to reach the prompt; the host's bytes after its
# Ctrl-C wait that long at most (Link._from_host).
INTERRUPT_WAIT = 1.0
# Output nobody reads (no client on the port) is kept up to this much, then dropped, as a
# UART drops what no one listens to; a client's first act is to flush its input anyway.
MAX_PENDING = 64 * 1024
BOOT_TIMEOUT = 10  # s; the unix port boots in about 20 ms


class DeviceFailed(RuntimeError):
    """The interpreter cannot boot (a heap too small, a broken boot script)."""


class Interpreter:
    """One life of the unix port, from power-on or soft reset to the next soft reset."""

    def __init__(self, fs_dir, heap, home):
        master, slave = os.openpty()
        _serial_line(slave)
        # The virtual dongle is a REPL for mpremote, not a memory model: it needs the raw
        # REPL (Ctrl-A) and raw-paste a board has, which the unix port's REPL gained after
        # 1.25 (the 32-bit images' version): the stock interpreter runs it.
        exe = runtime.stock_exe()
        argv = runtime.micropython_argv(BOOT_SCRIPT, heap, exe)
        argv[-1:-1] = ["-i"]  # run the boot script, then the REPL
        argv.append(str(fs_dir))
        env = dict(os.environ, HOME=str(home))  # the REPL's history file stays out of ~
        env.pop("MICROPYPATH", None)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=fs_dir,
                env=env,
                start_new_session=True,  # not in the caller's terminal's signals
            )
        finally:
            os.close(slave)
        self.fd = master
        os.set_blocking(master, False)
        self.booted = False  # its REPL reads the pty (see Link._from_device)
        self.boot_output = b""

    def running(self):
        """True while Python code runs: the unix port catches SIGINT only then
        (mp_hal_set_interrupt_char); at its prompt SIGINT's default action would end it."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & 1 << (signal.SIGINT - 1))
        except OSError:  # it just ended
            pass
        return False

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _serial_line(fd):
    """The interpreter's terminal as a UART: bytes through unchanged, except Ctrl-C.

    The unix port restores these settings while some code runs (its REPL switches to its
    own raw mode while reading), so they are what running code sees:
    - no echo and no line buffering: mpremote's replies to a running program (the
      `mount` protocol) must reach it at once and must not come back to the host;
    - no output processing: the REPL writes "\r\n" itself, which ONLCR would turn into
      "\r\r\n", and mpremote waits for exactly "raw REPL; CTRL-B to exit\r\n>";
    - no ISIG: code run by raw-paste (how mpremote sends everything) runs with the REPL's
      settings, where Ctrl-C is a byte nobody reads; Link sends the SIGINT itself.
    """
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
    iflag &= ~(termios.BRKINT | termios.ICRNL | termios.INLCR | termios.IGNCR)
    iflag &= ~(termios.ISTRIP | termios.IXON | termios.INPCK | termios.PARMRK)
    oflag &= ~termios.OPOST
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN | termios.ISIG)
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    attrs = [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class Link:
    """The serial line: bytes between the public pty and the current Interpreter."""

    # The stock interpreter is 64-bit: objects twice an ESP32's size, so twice its heap
    # (96K held the firmware's modules by a few hundred bytes, and stopped holding them).
    def __init__(self, fs_dir, heap=runtime.SCALED_HEAP):
        self.fs_dir = Path(fs_dir).resolve()
        if not self.fs_dir.is_dir():
            raise NotADirectoryError(f"{fs_dir}: not a folder; create it first")
        self.heap = runtime.check_heap(heap)
        self.home = Path(tempfile.mkdtemp(prefix="hanport-vdongle-"))
        self.host, self._slave = os.openpty()
        # Kept open: with no slave open, reads on the master fail with EIO between clients.
        tty.setraw(self._slave)
        os.set_blocking(self.host, False)
        self.port = os.ttyname(self._slave)
        self.to_host = bytearray()
        self.to_device = bytearray()
        self.device = None
        self.first_boot = True
        self.raw = False  # the host last asked for the raw REPL (Ctrl-A) and not left it
        self.tail = b""  # the end of the device's output, to spot a prompt
        self.last = 0  # the last byte sent to the host, for _cooked
        self.held = bytearray()  # host bytes after a Ctrl-C, until the device answers it
        self.hold_until = None  # time.monotonic() deadline of that wait

    def boot(self):
        self.device = Interpreter(self.fs_dir, self.heap, self.home)

    def close(self):
        if self.device is not None:
            self.device.stop()
            self.device = None
        os.close(self.host)
        os.close(self._slave)
        shutil.rmtree(self.home, ignore_errors=True)

    def pump(self, wake, timeout=None):
        """Move what is ready, waiting up to timeout s (None: until something is); reboot
        the interpreter if it ended (a soft reset). False when the fd `wake` became
        readable: serving should stop."""
        dev = self.device
        wr = []
        if self.to_host:
            wr.append(self.host)
        if self.to_device and dev.booted:
            wr.append(dev.fd)
        if self.hold_until is not None:
            held = max(0.0, self.hold_until - time.monotonic())
            timeout = held if timeout is None else min(timeout, held)
        readable, writable, _ = select.select([self.host, dev.fd, wake], wr, [], timeout)
        if wake in readable:
            return False
        if self.host in readable:
            self._from_host(_read(self.host))
        if dev.fd in readable:
            data = _read(dev.fd)
            if data is None:  # the interpreter closed its terminal: it ended
                self._soft_reset()
                return True
            self._from_device(dev, data)
        if self.host in writable:
            del self.to_host[: _write(self.host, self.to_host)]
        if dev.fd in writable:
            del self.to_device[: _write(dev.fd, self.to_device)]
        if self.hold_until is not None and time.monotonic() >= self.hold_until:
            self._release()  # the code ignored Ctrl-C for now: carry on as a board would
        return True

    def _from_host(self, data):
        if not data:
            return
        if self.hold_until is not None:
            self.held += data
            return
        cut = data.find(CTRL_C)
        if cut < 0 or not self.device.booted or not self.device.running():
            self._forward(data)  # at a prompt, Ctrl-C is the REPL's: it clears the line
            return
        # Ctrl-C interrupts running code, as a board's UART interrupt turns it into
        # KeyboardInterrupt. The unix port's REPL then flushes its input (TCSAFLUSH) as it
        # takes the terminal back, which a board never does, and mpremote sends "\r\x01"
        # right after "\r\x03": the bytes after Ctrl-C wait for the prompt.
        self._forward(data[:cut])
        self.device.interrupt()
        self.held += data[cut + 1 :]
        self.hold_until = time.monotonic() + INTERRUPT_WAIT

    def _release(self):
        held = bytes(self.held)
        self.held.clear()
        self.hold_until = None
        self._from_host(held)

    def _forward(self, data):
        for byte in reversed(data):  # the last of Ctrl-A / Ctrl-B says where the REPL is
            if byte in (CTRL_A, CTRL_B):
                self.raw = byte == CTRL_A
                break
        self.to_device += data

    def _from_device(self, dev, data):
        if not dev.booted:
            self._boot_output(dev, data)
            return
        self._to_host(data if self.raw else self._cooked(data))
        self.tail = (self.tail + data)[-4:]
        if self.hold_until is not None and (self.tail.endswith((b">", PROMPT))):
            self._release()

    def _boot_output(self, dev, data):
        # The unix port flushes its input when its REPL first takes the terminal, so
        # bytes for it wait until its first prompt shows it is reading.
        dev.boot_output += data
        if not dev.boot_output.endswith(PROMPT):
            return
        dev.booted = True
        if self.first_boot:
            self.first_boot = False  # power-on: nobody was listening to the banner
        elif self.raw:
            # A board soft-reset in the raw REPL comes back in it, banner unseen.
            self.to_device[:0] = bytes([CTRL_A])
        else:
            self._to_host(dev.boot_output)
        dev.boot_output = b""

    def _cooked(self, data):
        # print() on the unix port ends lines with "\n", a board's stdout with "\r\n";
        # the friendly REPL's console (mpremote repl) would show a staircase. The raw REPL
        # gets the bytes as they are: they are mpremote's protocol.
        out = bytearray()
        for byte in data:
            if byte == 0x0A and self.last != 0x0D:
                out.append(0x0D)
            out.append(byte)
            self.last = byte
        return bytes(out)

    def _soft_reset(self):
        self.device.stop()
        if not self.device.booted:  # it ended before its REPL: rebooting would loop
            output = self.device.boot_output.decode(errors="replace").strip()
            raise DeviceFailed(f"the MicroPython unix port ended while booting: {output}")
        self._to_host(SOFT_REBOOT)
        self.tail = b""
        if self.hold_until is not None:
            self._release()  # into to_device, which waits for the new REPL
        self.boot()

    def _to_host(self, data):
        self.to_host += data
        if len(self.to_host) > MAX_PENDING:
            del self.to_host[: len(self.to_host) - MAX_PENDING]


def _read(fd):
    """Bytes ready on fd, b"" if none after all, None when the other side is gone."""
    try:
        return os.read(fd, 4096) or None
    except BlockingIOError:
        return b""
    except OSError as err:
        if err.errno == errno.EIO:  # Linux: the slave side has no process left
            return None
        raise


def _write(fd, data):
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


class VirtualDongle:
    """A virtual dongle serving on a pty from a thread of this process: start() it, give
    .port to mpremote or hanctl, stop() it (or use it as a context manager).

    `error` holds why it stopped by itself (DeviceFailed), else None.
    """

    def __init__(self, fs_dir, heap=runtime.SCALED_HEAP):
        self.fs_dir = fs_dir
        self.heap = heap
        self.port = None
        self.error = None
        self._link = None
        self._thread = None

    def start(self, timeout=BOOT_TIMEOUT):
        """Returns once the interpreter is at its prompt, so .port answers at once. Raises
        NotADirectoryError, ValueError (heap), runtime.MissingInterpreter or DeviceFailed."""
        link = Link(self.fs_dir, self.heap)
        self._wake, self._waker = os.pipe()
        try:
            link.boot()
            deadline = time.monotonic() + timeout
            while not link.device.booted:
                if time.monotonic() > deadline:
                    raise DeviceFailed(f"the MicroPython unix port did not boot in {timeout} s")
                link.pump(self._wake, 0.1)
        except BaseException:
            link.close()
            os.close(self._wake)
            os.close(self._waker)
            raise
        self._link = link
        self.port = link.port
        self._thread = threading.Thread(target=self._serve, name="virtual-dongle", daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        try:
            while self._link.pump(self._wake):
                pass
        except (DeviceFailed, runtime.MissingInterpreter, OSError) as err:
            self.error = err  # run_command reports it; a test sees it in .error

    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def stop(self):
        if self._thread is None:
            return
        os.write(self._waker, b"x")
        self._thread.join()
        self._thread = None
        self._link.close()
        os.close(self._wake)
        os.close(self._waker)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def register(subparsers):
    parser = subparsers.add_parser(
        "virtual-dongle",
        help="a dongle on a pty: the MicroPython unix port with DIR as its filesystem",
    )
    parser.add_argument("--fs", required=True, metavar="DIR", help="the dongle's filesystem")
    parser.add_argument(
        "--heap",
        default=runtime.SCALED_HEAP,
        help="MicroPython heap size (default %(default)s: the stock 64-bit interpreter runs "
        "the virtual dongle, its objects twice an ESP32's size)",
    )
    parser.set_defaults(run=run_command)


def run_command(args):
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stopping.set())
    dongle = VirtualDongle(args.fs, args.heap)
    try:
        dongle.start()
    except (OSError, ValueError, runtime.MissingInterpreter, DeviceFailed) as err:
        print(f"hanctl virtual-dongle: {err}", file=sys.stderr)
        return 1
    try:
        print(dongle.port, flush=True)  # the first line: callers wait for it
        while dongle.alive() and not stopping.wait(0.5):
            pass
    finally:
        dongle.stop()
    if dongle.error:
        print(f"hanctl virtual-dongle: {dongle.error}", file=sys.stderr)
        return 1
    return 0
