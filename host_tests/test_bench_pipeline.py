"""`hanctl bench --pipeline` on a short run: the real dongle, broker and meter give a report
with a number in every cell. Nothing here is timed: the host decides the figures."""

import re
import shutil
from pathlib import Path

import pytest

from hanctl import bench_pipeline

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)

NUMBER = r"\d+(?:\.\d+)?"


def test_short_run_reports_a_number_in_every_cell():
    text = bench_pipeline.report(heap="256K", frames=20, burst=50, idle=1.0)

    row = re.search(r"^\| 256K \| (\w+) \|(.*)\|$", text, re.M)
    assert row, text
    assert row[1] == "yes", text  # ran: no problem noted
    cells = [c.strip() for c in row[2].split("|")]
    assert len(cells) == 9 and all(re.fullmatch(NUMBER, c) for c in cells), text
    median, p99, first, boot, peak, steady, burst, paced, idle = map(float, cells)
    assert 0 < median <= p99
    # Boot: before the first frame, every session up; it can sit a few hundred bytes above
    # the peak taken from the first frame on (garbage of the sessions' start, since freed).
    assert 0 < boot <= 256 * 1024 and 0 < steady <= peak <= 256 * 1024
    assert burst > 0 and paced > 0 and idle >= 0
    assert "did not run" not in text  # one run only: 256K is the fallback heap itself
    assert re.search(r"\d+ modules, \d+ B of \.mpy", text), text
    assert re.search(rf"median latency {NUMBER} ms .*(met|NOT met)", text), text
    assert re.search(rf"steady-state heap \d+ B = {NUMBER} KiB used.*(met|NOT met)", text), text
    assert "the dongle counted 170 readings in all" in text, text  # 20 paced + 3 x 50


def test_destinations_beside_the_measured_one_each_have_their_session():
    # The report's rows: the measured destination with discovery, and plain ones beside it.
    text = bench_pipeline.report(
        heap="256K", frames=10, burst=30, idle=1.0, destinations=3, discovery=True
    )

    assert "Home Assistant discovery on; 2 plain destination(s) beside it" in text, text
    row = re.search(r"^\| 256K \| (\w+) \|(.*)\|$", text, re.M)
    assert row and row[1] == "yes", text
    boot = float(row[2].split("|")[3])
    assert 0 < boot <= 256 * 1024, text
    assert "the dongle counted 100 readings in all" in text, text


def test_heap_sizes_parse_as_the_unix_port_reads_them():
    assert bench_pipeline._heap_bytes("96K") == 96 * 1024
    assert bench_pipeline._heap_bytes("1M") == 1024 * 1024
    assert bench_pipeline._heap_bytes("20000") == 20000
    assert bench_pipeline._heap_bytes("1000w") == 8000  # 64-bit words


@pytest.mark.tls
def test_short_run_over_tls_reports_the_heap_and_mbedtls_buffers():
    text = bench_pipeline.report(heap="256K", frames=10, burst=30, idle=1.0, tls=True)

    assert "over TLS (mosquitto's TLS listener; the dongle verifies its CA)" in text, text
    row = re.search(r"^\| 256K \| (\w+) \|(.*)\|$", text, re.M)
    assert row and row[1] == "yes", text  # the dongle published over its TLS session
    assert "the dongle counted 100 readings in all" in text, text  # 10 paced + 3 x 30
    # mbedTLS's buffers sit in the C heap, as on an ESP32 (its IDF heap), not in MicroPython's:
    # each connection held adds at least the 16 KB record buffer of MicroPython's mbedTLS
    # configuration there (.ci/run installs valgrind; a host without it says so).
    tail = text.splitlines()[-1]
    if "valgrind is not installed" not in tail:
        held = re.search(r"each of 2 TLS connections held open adds \+(\d+) B, \+(\d+) B", tail)
        assert held, tail
        assert all(16384 <= int(x) <= 64 * 1024 for x in held.groups()), tail
