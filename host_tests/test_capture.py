"""`hanctl capture` against a TCP bridge (as `hanctl simulate` or ser2net serve a meter): the
file holds exactly the bytes sent, `hanctl decode` reads them back, and the summary tells
no bytes from bad bytes."""

import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hanctl import capture, encoder

HANCTL = Path(sys.executable).parent / "hanctl"
STREAM = b"".join(frame for _, frame in encoder.sample_frames())  # 9 frames, 3 meters


class Bridge:
    """A TCP port that sends `data` to the first client, then holds the connection open
    (or closes it, as a bridge whose serial side went away)."""

    def __init__(self, data, close=False):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.done = threading.Event()
        threading.Thread(target=self._serve, args=(data, close), daemon=True).start()

    def _serve(self, data, close):
        try:
            conn, _ = self.sock.accept()
        except OSError:  # stopped before anyone connected
            return
        with conn:
            conn.sendall(data)
            if not close:
                self.done.wait(30)

    def stop(self):
        self.done.set()
        self.sock.close()


@pytest.fixture
def bridge():
    made = []

    def make(data, close=False):
        made.append(Bridge(data, close))
        return made[-1]

    yield make
    for b in made:
        b.stop()


def hanctl(*args):
    proc = subprocess.run([str(HANCTL), *args], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def test_capture_keeps_the_bytes_and_decode_reads_them(tmp_path, bridge):
    out = tmp_path / "meter.bin"
    status, summary, err = hanctl(
        "capture", "--port", bridge(STREAM).url, "--out", str(out), "--seconds", "1.5"
    )
    assert status == 0, err
    assert out.read_bytes() == STREAM
    assert summary == f"{out}: {len(STREAM)} bytes, 9 frames, 9 readings; time is up\n"
    status, decoded, err = hanctl("decode", str(out))
    assert status == 0, err
    readings = [json.loads(line) for line in decoded.splitlines()]
    assert len(readings) == 9 and all("active_power_import" in r for r in readings)
    assert {r.get("meter_manufacturer") for r in readings} >= {"Aidon", "Kaifa", "Kamstrup"}


def test_no_bytes_says_what_to_check(tmp_path, bridge):
    out = tmp_path / "silent.bin"
    status, summary, _ = hanctl("capture", "--port", bridge(b"").url, "--out", str(out),
                                "--seconds", "1")  # fmt: skip
    assert status == 1
    assert out.read_bytes() == b""
    assert "0 bytes, 0 frames, 0 readings" in summary
    assert "no bytes: check the cable, the M-Bus level shifter and the baud" in summary


def test_bytes_that_are_no_frames_point_at_baud_and_parity(tmp_path, bridge):
    # What 2400 8E1 frames look like read at the wrong speed: bytes, never a frame.
    noise = bytes((i * 37) & 0x7D for i in range(600))
    out = tmp_path / "noise.bin"
    status, summary, _ = hanctl("capture", "--port", bridge(noise).url, "--out", str(out),
                                "--seconds", "1")  # fmt: skip
    assert status == 0 and out.read_bytes() == noise
    assert "600 bytes, 0 frames, 0 readings (noise 1)" in summary
    assert "bytes but no frame: check the baud and parity" in summary


def test_a_closed_bridge_ends_the_capture(tmp_path, bridge):
    out = tmp_path / "meter.bin"
    start = time.monotonic()
    status, summary, _ = hanctl("capture", "--port", bridge(STREAM, close=True).url,
                                "--out", str(out))  # fmt: skip
    assert status == 0 and time.monotonic() - start < 20
    assert out.read_bytes() == STREAM
    assert "9 readings; the port closed" in summary


def test_ctrl_c_ends_cleanly_with_a_summary(tmp_path, bridge):
    out = tmp_path / "meter.bin"
    proc = subprocess.Popen(
        [str(HANCTL), "capture", "--port", bridge(STREAM).url, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while (not out.exists() or out.stat().st_size < len(STREAM)) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    summary, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert summary == f"{out}: {len(STREAM)} bytes, 9 frames, 9 readings; stopped\n"
    assert out.read_bytes() == STREAM


def test_progress_lines_while_recording(bridge, monkeypatch):
    monkeypatch.setattr(capture, "PROGRESS_S", 0.4)
    progress, out = io.StringIO(), io.BytesIO()
    with capture.open_port(bridge(STREAM[:100]).url, 2400, "E") as link:
        why = capture.record(link, out, capture.Tally(), seconds=1.0, progress=progress)
    assert why == "time is up" and out.getvalue() == STREAM[:100]
    lines = progress.getvalue().splitlines()
    assert lines and re.fullmatch(r"capture: 100 bytes, 1 frames, 1 readings in \d s", lines[0])


def test_a_port_that_is_not_there(tmp_path):
    status, _, err = hanctl("capture", "--port", str(tmp_path / "ttyUSB9"), "--out",
                            str(tmp_path / "x.bin"), "--seconds", "1")  # fmt: skip
    assert status == 2 and "cannot open" in err
