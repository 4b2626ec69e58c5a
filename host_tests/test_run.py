"""`hanctl run` as a process: a service manager's stop (SIGTERM), a closed terminal (SIGHUP)
or Ctrl-C (SIGINT), sent to hanctl run alone, ends the firmware it runs as well, and the
exit status is the shell's 128 + the signal's number."""

import contextlib
import json
import os
import signal
import subprocess

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


# -- bad configs, CA files and the checked copy ----------------------------------------------


def run_once(tmp, config_path, *extra):
    """`hanctl run` on config_path until it ends (a bad file) or 15 s pass: (status, output)."""
    cmd = [str(rig.HANCTL), "run", "--config", str(config_path), "--uart", "tcp://127.0.0.1:9"]
    try:
        out = subprocess.run(
            [*cmd, "--state", str(tmp / "fs"), *extra], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired as e:  # the firmware waits in its safe state
        return None, (e.stdout or b"").decode() + (e.stderr or b"").decode()
    return out.returncode, out.stdout + out.stderr


def test_hanctl_run_copies_no_ca_file_from_outside_and_the_firmware_says_which_key(tmp_path):
    (tmp_path / "conf" / "sub").mkdir(parents=True)
    (tmp_path / "conf" / "x.pem").write_text("not for the dongle")
    cfg = rig.config({"name": "a", "host": "h", "share": "full", "tls": {"ca": "../x.pem"}})
    (tmp_path / "conf" / "sub" / "config.json").write_text(json.dumps(cfg))
    status, out = run_once(tmp_path, tmp_path / "conf" / "sub" / "config.json")
    assert not (tmp_path / "x.pem").exists()  # fs/../x.pem: before, copied there
    # the refused config's setup mode gets its page; no CA file
    assert sorted(p.name for p in (tmp_path / "fs").iterdir()) == ["config.json", "page.html.gz"]
    assert 'destinations[0].tls.ca: "../x.pem" is outside the dongle\'s folder' in out, out
    assert "Traceback" not in out


def test_hanctl_run_names_no_traceback_for_a_config_of_any_depth_or_kind(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"destinations": [{"tls": {"ca": ' + "[" * 100_000 + "]" * 100_000 + "}}]}")
    status, out = run_once(tmp_path, deep)
    assert "Traceback" not in out and "RecursionError" not in out, out[-2000:]
    assert "config.json: 200037 bytes is too big" in out, out[-2000:]
    folder = tmp_path / "a-folder.json"
    folder.mkdir()
    status, out = run_once(tmp_path, folder)
    assert status == 1 and out.strip().splitlines() == [
        f"hanctl run: {folder}: cannot be read (Is a directory)"
    ], out


def test_a_missing_ca_file_is_named_with_its_key(parts):
    tmp, track = parts
    d = {"name": "a", "host": "127.0.0.1", "port": rig.free_port(), "share": "full"}
    d.update(tls={"ca": "nowhere.pem"}, retry_min=1, retry_max=1)
    dongle = track(rig.Dongle(tmp / "fs", rig.config(d), "tcp://127.0.0.1:9").start())
    dongle.wait_log("destination a failed")
    line = next(x for x in dongle.output if "destination a failed" in x)
    assert "tls.ca: nowhere.pem cannot be read" in line, line


def test_the_checked_copy_goes_away_with_config_json(parts):
    """config.checked holds config.json's passwords in plain text: deleted with it."""
    tmp, track = parts
    cfg = rig.config({"name": "a", "host": "h", "share": "full", "user": "u", "password": "pw-X1"})
    first = track(rig.Dongle(tmp / "fs", cfg, "tcp://127.0.0.1:9").start())
    first.wait_log("running: 1 destination(s)")
    first.stop()
    assert "pw-X1" in (tmp / "fs" / "config.checked").read_text()
    gone = track(rig.Dongle(tmp / "fs", None, "tcp://127.0.0.1:9").start())  # deleted
    gone.wait_log("safe state")
    gone.stop()
    assert sorted(p.name for p in (tmp / "fs").iterdir() if "checked" in p.name) == []
