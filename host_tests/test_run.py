"""`hanctl run` as a process: a service manager's stop (SIGTERM), a closed terminal (SIGHUP)
or Ctrl-C (SIGINT), sent to hanctl run alone, ends the firmware it runs as well, and the
exit status is the shell's 128 + the signal's number."""

import contextlib
import os
import signal

import pytest

import rig


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_hanctl_run_stops_the_firmware_too(parts, signum):
    tmp, track = parts
    meter = rig.free_port()  # nothing listens: the firmware waits for its meter
    dongle = track(rig.Dongle(tmp / "fs", rig.config(), f"tcp://127.0.0.1:{meter}").start())
    dongle.wait_log("running: 0 destination(s)")
    group = dongle.proc.pid  # start_new_session: hanctl run's pid is the group's id
    firmware = [pid for pid in rig.group_pids(group) if pid != dongle.proc.pid]
    assert firmware, "no micropython process under hanctl run"

    dongle.proc.send_signal(signum)  # to hanctl run only, as `kill` or systemd sends it
    status = dongle.proc.wait(30)
    try:
        rig.wait_for(
            lambda: not rig.group_pids(group),
            timeout=10,
            why=f"the firmware {firmware} to end with hanctl run",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # what a failure left running
    assert status == 128 + signum
