"""dongle._ntp: an NTP server's reply is untrusted input. Whatever ntptime raises on a bad
one, the network task carries on (tried again 10 s later) instead of ending, which would
stop the watchdog's feeding and reset the board."""

import sys

import pytest

from hanctl import runtime

runtime.use_firmware_in_cpython()
import dongle  # noqa: E402 - after the firmware is on the path

# How micropython-lib's ntptime fails on what a server sends: a short reply fails its
# struct.unpack, an absurd time gmtime(); no link or no answer is an OSError.
FAILURES = {
    "short reply": "raise ValueError('buffer too small')",
    "absurd time": "raise OverflowError('timestamp out of range')",
    "no answer": "raise OSError(110)",
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_bad_ntp_reply_is_logged_and_retried_not_raised(tmp_path, monkeypatch, capsys, failure):
    (tmp_path / "ntptime.py").write_text(
        f"host = None\n\ndef settime():\n    {FAILURES[failure]}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ntptime", raising=False)
    monkeypatch.setattr(dongle, "log", print)  # the HAL's log, which Dongle() binds
    assert dongle._ntp("ntp.test") is False
    assert "ntp ntp.test failed:" in capsys.readouterr().out


def test_a_good_ntp_reply_is_taken(tmp_path, monkeypatch):
    (tmp_path / "ntptime.py").write_text("host = None\n\ndef settime():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ntptime", raising=False)
    assert dongle._ntp("ntp.test") is True
