"""The virtual dongle as mpremote and hanctl see it: the real MicroPython unix port behind a
pty, driven by the real mpremote (its command line, and its transport through device.py).
Its file system is a folder of the host, and nothing above that folder."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hanctl import device

BIN = Path(sys.executable).parent
MPREMOTE = BIN / "mpremote"
HANCTL = BIN / "hanctl"


def mpremote(port, *args, timeout=30):
    proc = subprocess.run(
        [str(MPREMOTE), "connect", port, *args], capture_output=True, text=True, timeout=timeout
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_files_mpremote_copies_land_in_the_folder(dongle, fs, tmp_path):
    local = tmp_path / "meter.bin"
    local.write_bytes(bytes(range(256)) * 9)  # every byte value, over several chunks
    status, out, err = mpremote(
        dongle.port, "fs", "cp", str(local), ":/meter.bin", "+", "fs", "mkdir", ":lib"
    )
    assert status == 0, err
    assert (fs / "meter.bin").read_bytes() == local.read_bytes()
    assert (fs / "lib").is_dir()
    status, out, err = mpremote(dongle.port, "fs", "ls", ":/")
    assert status == 0, err
    assert "2304 meter.bin" in out and "lib/" in out
    back = tmp_path / "back.bin"
    status, _, err = mpremote(dongle.port, "fs", "cp", ":meter.bin", str(back))
    assert status == 0, err
    assert back.read_bytes() == local.read_bytes()


def test_the_hosts_root_is_out_of_reach(dongle, fs):
    (fs / "only-this.txt").write_text("x")
    code = (
        "import os\n"
        "print(sorted(os.listdir('/')))\n"
        "print(sorted(os.listdir('/../..')))\n"
        "os.chdir('..'); print(os.getcwd())\n"
        "open('/../../escaped.txt', 'w').write('y')\n"
    )
    status, out, err = mpremote(dongle.port, "exec", code)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "['only-this.txt']"  # no etc, usr, tmp: the host's / is not there
    assert lines[1] == "['only-this.txt']"  # ".." at the top stays at the top
    assert lines[2] == "/"
    assert (fs / "escaped.txt").read_text() == "y"
    assert not (fs.parent / "escaped.txt").exists()
    assert not (fs.parent.parent / "escaped.txt").exists()


def test_soft_reset_starts_a_clean_interpreter(dongle):
    # mpremote soft-resets on connecting; `resume` keeps the session's state.
    status, out, err = mpremote(
        dongle.port,
        "exec",
        "meter = 'kaifa'",
        "+",
        "resume",
        "eval",
        "'meter' in globals()",
        "+",
        "soft-reset",
        "eval",
        "'meter' in globals()",
    )
    assert status == 0, err
    assert out.split() == ["True", "False"]


def test_ctrl_c_interrupts_code_the_host_left_running(dongle):
    status, _, err = mpremote(dongle.port, "exec", "--no-follow", "while True:\n  pass")
    assert status == 0, err
    started = time.monotonic()
    # mpremote's next connection interrupts it (Ctrl-C) before anything else.
    status, out, err = mpremote(dongle.port, "eval", "6 * 7", timeout=20)
    assert (status, out.strip()) == (0, "42"), err
    assert time.monotonic() - started < 5


def test_device_reads_writes_and_hashes_through_mpremotes_transport(dongle, fs):
    data = os.urandom(5000)
    with device.connect(dongle.port) as dev:
        assert dev.platform() == "linux"
        dev.write_file("/certs/ca.pem", data)
        assert dev.read_file("/certs/ca.pem") == data
        assert dev.sha256("/certs/ca.pem") == hashlib.sha256(data).hexdigest()
        assert dev.sha256("/none.json") is None
        assert dev.sha256_many(["/certs/ca.pem", "/x"]) == {
            "/certs/ca.pem": hashlib.sha256(data).hexdigest(),
            "/x": None,
        }
        dev.write_file("/certs/ca.pem", b"replaced")  # over an existing file
        dev.mkdir("/certs")  # already there: no error
        assert dev.listdir("/") == ["certs"]
        assert dev.listdir("/certs") == ["ca.pem"]  # no .tmp left behind
        with pytest.raises(FileNotFoundError):
            dev.read_file("/none.json")
        with pytest.raises(device.DeviceError, match="ZeroDivisionError"):
            dev.exec("1 // 0")
    assert (fs / "certs" / "ca.pem").read_bytes() == b"replaced"


def test_a_write_keeps_a_copy_left_only_as_its_temp_file(dongle, fs):
    # A cut inside FAT's remove-then-rename left only config.json.tmp, whole. The next push
    # must not write over that only copy before the new file is complete.
    (fs / "config.json.tmp").write_bytes(b'{"old": 1}')
    with device.connect(dongle.port) as dev:

        def cut(*args, **kwargs):  # the power goes while the new bytes are sent
            raise OSError("cut")

        dev.transport.fs_writefile = cut
        with pytest.raises(OSError, match="cut"):
            dev.write_file("/config.json", b'{"new": 2}')
    assert (fs / "config.json").read_bytes() == b'{"old": 1}'


def test_sha256_without_hashlib_on_the_device_reads_the_file(dongle):
    with device.connect(dongle.port) as dev:
        dev.write_file("/board.json", b"{}")
        # A build without hashlib: `import hashlib` gives None in this session.
        dev.exec("import sys\nsys.modules['hashlib'] = None")
        assert dev.sha256_many(["/board.json", "/x"]) == {
            "/board.json": hashlib.sha256(b"{}").hexdigest(),
            "/x": None,
        }


def test_a_missing_or_silent_port_is_a_clear_error(tmp_path):
    with pytest.raises(device.DeviceError, match="no such serial port"):
        with device.connect(str(tmp_path / "ttyUSB9")):
            pass
    master, slave = os.openpty()  # a terminal nobody answers on
    try:
        with pytest.raises(device.DeviceError, match="no MicroPython REPL answers"):
            with device.connect(os.ttyname(slave), timeout=1):
                pass
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_command_prints_its_port_and_stops_cleanly(fs, stop):
    proc = subprocess.Popen(
        [str(HANCTL), "virtual-dongle", "--fs", str(fs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/"), proc.stderr.read()
        status, out, err = mpremote(port, "exec", "open('/hello', 'w').write('hi')")
        assert status == 0, err
        proc.send_signal(stop)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr.read() == ""  # no traceback
        assert (fs / "hello").read_text() == "hi"
        assert not os.path.exists(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_the_command_refuses_a_missing_folder(tmp_path):
    proc = subprocess.run(
        [str(HANCTL), "virtual-dongle", "--fs", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "not a folder" in proc.stderr and "Traceback" not in proc.stderr
