"""The meter link finds the line setting from checksum-valid frames (MicroPython unix port)."""

from frames import FRAME
from mp import run_driver


def test_line_setting_search():
    proc = run_driver("link_driver.py", FRAME.hex())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.splitlines() == [
        # 25 s of bytes that never make a frame under 8E1: next setting; a frame locks it
        "tried=2400 8E1,2400 8N1 locked=True on=2400 8N1 switches=1 frames=1",
        "tried=2400 8N1 locked=True on=2400 8N1 switches=0 frames=1",
        "tried=2400 8E1 locked=False on=- switches=0 frames=0",
        "tried=2400 8N1 locked=True on=- switches=0 frames=0",
        "tried=9600 8E1,9600 8N1 locked=False on=- switches=1 frames=0",
        "tried=2400 8E1 locked=True on=2400 8E1 switches=0 frames=1",
        "tried=2400 8E1 locked=False on=- switches=0 frames=0",
    ]
