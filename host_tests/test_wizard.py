"""`hanctl config init` as an owner's script runs it: the installed console script, answers
on stdin, the file checked by `hanctl config validate` (the firmware's validator)."""

import json
import os
import pty
import select
import stat
import subprocess
import sys
from pathlib import Path

from configs import SECRETS, TWO_NETWORKS_TWO_DESTINATIONS

HANCTL = Path(sys.executable).parent / "hanctl"
KEY = "3474a1b2c3d4e5f60718293a4b5c6352"  # an encrypting meter's key (made up)


def init(path, answers):
    proc = subprocess.run(
        [str(HANCTL), "config", "init", str(path)],
        input="".join(a + "\n" for a in answers),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


def validate(path):
    proc = subprocess.run(
        [str(HANCTL), "config", "validate", str(path)], capture_output=True, text=True
    )
    return proc.returncode, proc.stdout


EXPECTED = {
    "wifi": [
        {"ssid": "home", "password": SECRETS[0]},
        {"ssid": "cabin", "password": SECRETS[1]},
    ],
    "hostname": "hanport-1a2b3c",
    "board": "esp32c3-reader",
    "meter": {"baud": "auto", "parity": "auto"},
    "ntp": "pool.ntp.org",
    "destinations": [
        {
            "name": "home-assistant",
            "host": "192.168.1.10",
            "tls": {"ca": "ca.pem"},
            "port": 8883,
            "user": "hanport",
            "password": SECRETS[2],
            "topic": "hanport/1a2b3c",
            "share": "full",
            "discovery": True,
        },
        {
            "name": "hourly-stats",
            "host": "broker.example.net",
            "tls": None,
            "port": 1883,
            "topic": "energy/house",
            "share": "hourly",
            "discovery": False,
        },
    ],
}


def test_two_networks_two_destinations(tmp_path):
    path = tmp_path / "config.json"
    status, out, err = init(path, TWO_NETWORKS_TWO_DESTINATIONS)
    assert status == 0, out + err
    assert json.loads(path.read_text()) == EXPECTED
    assert validate(path) == (0, f"{path}: valid (2 destination(s))\n")
    for secret in SECRETS:
        assert secret not in out and secret not in err
    assert out.count('"password": "(set)"') == 3  # the summary says they are there
    assert err == ""  # no GetPassWarning: getpass is not used on a pipe
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds passwords
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left
    assert "Port [8883]:" in out and "Port [1883]:" in out  # defaults from the validator
    assert "Topic [hanport/1a2b3c]:" in out


def test_bad_answers_are_asked_again_with_the_validators_message(tmp_path):
    path = tmp_path / "c.json"
    answers = [
        "home",
        "short",  # too short for WPA2
        "long-enough",
        "",
        "-bad-",  # not a host name
        "hanport-x1",
        "9",  # no such board
        "esp32s2-amsleser",
        "2400 8O1",  # no such parity
        "2400 8e1",
        "y",  # it encrypts
        "",  # no key: asked again
        "0123456789abcdef",  # too short
        KEY,
        "not hex at all, but 32 letters!",  # the auth key: not hex
        "",  # none
        "none",  # no NTP
        "grafana",
        "10.0.0.2",
        "maybe",  # not y or n
        "n",
        "abc",  # not a port
        "70000",
        "1884",
        "",
        "",
        "?",  # lists the fields
        "active_power_import, no_such_field",
        "active_power_import, 1-0:1.8.0",
        "n",
        "",
    ]
    status, out, err = init(path, answers)
    assert status == 0, out + err
    cfg = json.loads(path.read_text())
    assert cfg["wifi"] == [{"ssid": "home", "password": "long-enough"}]
    assert (cfg["hostname"], cfg["board"], cfg["ntp"]) == ("hanport-x1", "esp32s2-amsleser", None)
    assert cfg["meter"] == {"baud": 2400, "parity": "8E1", "key": KEY}
    assert cfg["destinations"] == [
        {
            "name": "grafana",
            "host": "10.0.0.2",
            "tls": None,
            "port": 1884,
            "topic": "hanport/x1",
            "share": ["active_power_import", "1-0:1.8.0"],
            "discovery": False,
        }
    ]
    assert validate(path)[0] == 0
    for message in (
        "wifi[0].password: 5 characters is too short",
        'hostname: "-bad-" is not a host name',
        "'9' is not one of the boards",
        'meter.parity: "8O1" is not a parity',
        "an encrypting meter needs its key",
        "meter.key: ",
        "meter.auth_key: ",
        "answer y or n",
        'destinations[0].port: "abc" is not a port',
        "destinations[0].port: 70000 is not a port",
        'destinations[0].share[1]: "no_such_field" is not a reading field',
        "fields: meter_id, meter_model,",
    ):
        assert message in out, message
    assert out.count("Port [1883]:") == 3 and out.count("Share:") == 3
    # Keys are secrets: neither the right one nor the wrong ones are ever repeated.
    for key in (KEY, "0123456789abcdef", "not hex at all"):
        assert key not in out + err


def test_live_share_asks_for_its_interval(tmp_path):
    path = tmp_path / "c.json"
    answers = ["home", "", "", "hanport-ab", "1", "", "", "", "ha", "ha.local", "", "", "",
               "", "live", "0", "", "", ""]  # fmt: skip
    status, out, err = init(path, answers)
    assert status == 0, out + err
    dest = json.loads(path.read_text())["destinations"][0]
    assert dest["share"] == "live" and dest["interval"] == 10  # config.DEFAULT_INTERVAL
    assert "destinations[0].interval: 0 is not a number of seconds" in out
    assert json.loads(path.read_text())["wifi"] == [{"ssid": "home"}]  # an open network


def test_an_existing_file_is_kept_unless_the_owner_says_so(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{}")
    status, out, _ = init(path, ["n"])
    assert status == 1 and path.read_text() == "{}"
    assert f"{path} exists; replace it (y/n) [n]:" in out
    status, out, err = init(path, ["y", *TWO_NETWORKS_TWO_DESTINATIONS])
    assert status == 0, out + err
    assert json.loads(path.read_text()) == EXPECTED


def test_answers_that_end_early_write_nothing(tmp_path):
    path = tmp_path / "config.json"
    status, _, err = init(path, TWO_NETWORKS_TWO_DESTINATIONS[:12])
    assert status == 1 and "nothing written" in err
    assert list(tmp_path.iterdir()) == []


def test_at_a_terminal_passwords_are_not_echoed(tmp_path):
    """The same answers typed at a terminal (a pseudo-terminal that is the wizard's
    controlling terminal): getpass turns echo off, so the passwords never show, while the
    other answers are echoed by the terminal as usual."""
    path = tmp_path / "config.json"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the wizard, on the pty
        os.execv(str(HANCTL), [str(HANCTL), "config", "init", str(path)])
    transcript = b""
    try:
        for answer in TWO_NETWORKS_TWO_DESTINATIONS:
            seen = b""
            # Type only at the prompt: getpass flushes what was typed before it asks.
            while not seen.rstrip(b" ").endswith(b":"):
                ready, _, _ = select.select([fd], [], [], 20)
                assert ready, (transcript + seen).decode()[-500:]
                seen += os.read(fd, 4096)
            transcript += seen
            os.write(fd, answer.encode() + b"\r")
        while select.select([fd], [], [], 20)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child exited and closed the pty (EIO on Linux)
                break
            if not chunk:
                break
            transcript += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = transcript.decode()
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    assert json.loads(path.read_text()) == EXPECTED
    assert "192.168.1.10" in text  # echoed by the terminal
    for secret in SECRETS:
        assert secret not in text
