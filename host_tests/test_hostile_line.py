"""A hostile meter line on the owner's busiest configuration: four destinations, the
official image's model with the firmware's .mpy files at -X heapsize=96K (`hanctl run`),
Debian's mosquitto, a meter on a TCP "UART".

The frame search's checksums of overlapping candidates run from marks (firmware/marks.py),
which load at the first overlap into whatever heap is left: on this configuration 13 KB
free, in holes of at most 768 B, until the destinations shared one JSON buffer (16.7 KB
since; before, this test failed 1 run in 10, 6 in 20 beside two busy loops). Without them
each candidate runs its whole checksum, about 300 bytes of work a byte fed
(docs/reliability.md); with too much of them (8-byte blocks, 4.4 KB) a session here failed
`out of memory` in 2 runs of 4 (CI found it).
"""

import shutil
import time
from pathlib import Path

import pytest

from hanctl import bench_pipeline, encoder
from hanctl.broker import Mosquitto
from hanctl.loopback import Dongle, Line, Subscriber

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)

# An HDLC header every 4 bytes, its HCS valid, each frame 1,537 bytes long and ending on a
# flag: every candidate's FCS is checked, the densest such line found (bench_hostile.py).
ATTACK = b"\x7e\xa5\xff\x8d" * 2048


def test_four_destinations_at_96k_load_the_marks_and_publish_the_frame_after_the_attack(
    tmp_path,
):
    broker = Mosquitto(tmp_path).start()
    parts = [broker]
    try:
        sub = Subscriber(broker.port, bench_pipeline.BASE)
        parts.append(sub)
        line = Line()
        parts.append(line)
        config = bench_pipeline._config(broker.port, None, 4, False, broker.port)
        dongle = Dongle(tmp_path, config, "96K", line.port).start()
        parts.append(dongle)
        assert dongle.wait_log("destination bench connected", 20), "\n".join(dongle.output[-30:])
        assert line.wait_client(10)

        def reading(power):
            line.send(encoder.aidon(2, {"p_import": power}))
            return sub.wait_power(power, 5)

        for power in range(100, 105):
            assert reading(power), "\n".join(dongle.output[-30:])
            time.sleep(0.3)
        time.sleep(1.5)  # the stats of every second: the free heap before
        before = sub.stats[-1][1]
        line.send(ATTACK)
        assert reading(5000), "\n".join(dongle.output[-30:])  # the real frame after it
        for power in range(200, 205):
            assert reading(power), "\n".join(dongle.output[-30:])
            time.sleep(0.3)
        time.sleep(1.5)
        after = sub.stats[-1][1]
        # Every candidate rejected (its FCS), none taken for a frame.
        assert after["rejected"]["checksum"] > 1500, after
        assert after["frames"]["hdlc"] == before["frames"]["hdlc"] + 6, after
        # marks.py stays in the heap once loaded: its code and its marks, 3.9 KB here
        # (32-byte blocks, the chains' trail and tip). Had it found no room, it would have
        # left again (0 B).
        assert before["free_heap"] - after["free_heap"] > 1500, (before, after)
        errors = [x for x in dongle.output if "Error" in x or "out of memory" in x]
        assert not errors, errors
    finally:
        for part in reversed(parts):
            part.stop()
