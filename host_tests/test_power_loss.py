"""Power loss: SIGKILL at random instants of the config writers, of the
outage queue, and of the whole dongle, then a restart on the same folder; and a cut after
each block write on littlefs and FAT. The runs are stress/power_loss.py's, shorter; its
docstring says what each checks, and its --kills gives the long run.

The seed is HANPORT_POWER_LOSS_SEED (default 5), printed and named in every failure: it
fixes the configs, queue steps and kill delays; what a kill lands on also depends on the
machine's load, so the counts of phases vary from run to run, the verdicts must not.
"""

import os
import shutil
from pathlib import Path

import pytest

import rig
from stress import power_loss

SEED = int(os.environ.get("HANPORT_POWER_LOSS_SEED", "5"))

needs_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)


def _run(fn, *args):
    lines = []
    counts = fn(*args, out=lines.append)
    print(f"seed {SEED}:", *lines)
    return counts, f"seed {SEED}: {' '.join(lines)}; failures: {counts['failures'][:5]}"


def test_a_cut_at_every_block_write_on_littlefs_and_fat_leaves_old_or_new(tmp_path):
    # Before outbox.py took a lone queue-A.jsonl.tmp back, FAT lost the whole queue to a
    # cut between the rename's remove and its rename (pop and append-full: 4 cuts), and
    # state.json its salt (2 cuts); store.recover now takes the temp file back for both.
    counts, why = _run(power_loss.sweep_run, tmp_path)
    assert counts["failures"] == [], why
    assert counts["bad"] == 0, why
    assert counts["cuts"] >= 100, why  # five writers on two file systems, each write cut


@needs_mosquitto
def test_config_writers_killed_at_random_leave_the_old_or_the_new_config(tmp_path):
    counts, why = _run(power_loss.config_run, tmp_path, 90, SEED)
    assert counts["failures"] == [], why
    assert counts["kills"] == 90 and counts["broken"] == 0 and counts["loops"] == 0, why
    # The kills landed where it matters: while config.json.tmp was being written, and
    # both sides of the rename.
    assert counts["phase_tmp_partial"] > 0 and counts["old"] > 0 and counts["new"] > 0, why
    # Each kill was followed by a boot that ran with A or B (3 first boots besides).
    assert counts["boots_A"] + counts["boots_B"] == 93, why
    assert counts["boots_A"] > 0 and counts["boots_B"] > 0, why
    assert counts["restarts"] <= 93, why  # at most one per boot: into a config it checked


@needs_mosquitto
def test_device_cut_during_hanctl_config_push_keeps_the_old_or_the_new_config(tmp_path):
    counts, why = _run(power_loss.push_run, tmp_path, 30, SEED)
    assert counts["failures"] == [], why
    assert counts["kills"] == 30 and counts["broken"] == 0 and counts["loops"] == 0, why
    assert counts["old"] > 0 and counts["new"] > 0, why
    assert counts["phase_tmp_partial"] + counts["phase_tmp_whole"] > 0, why  # mid-push
    assert counts["boots_A"] + counts["boots_B"] == 31, why


def test_outbox_killed_at_random_keeps_every_message_but_the_one_being_written(tmp_path):
    counts, why = _run(power_loss.outbox_run, tmp_path, 100, SEED)
    assert counts["failures"] == [] and counts["lost"] == 0, why
    assert counts["kills"] == 100, why
    # Killed mid-append (the line torn) and mid-rewrite (the temp file half written).
    assert counts["phase_torn_line"] > 0 and counts["phase_mid_rewrite"] > 0, why
    assert counts["max_queue"] == power_loss.CAPACITY, why  # and at capacity


@needs_mosquitto
def test_dongle_killed_through_outages_loses_no_hourly_message(tmp_path):
    counts, why = _run(power_loss.dongle_run, tmp_path, 30, SEED)
    assert counts["failures"] == [], why
    assert counts["missing"] == 0, why
    # At most the hour in flight at each kill (sent, not yet whole on flash).
    assert counts["lost"] <= counts["inflight_lost"] <= counts["kills"], why
    assert counts["delivered"] + counts["lost"] == counts["sent"], why
    assert counts["cycles"] >= 1 and counts["broker_down_kills"] > 0, why
    assert counts["broker_up_kills"] > 0 and counts["max_queue"] >= 30, why
