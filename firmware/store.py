# The dongle's files, kept whole through a power cut: one way to write them and one way
# back after a cut, for every writer (the state and the checked config in startup, the
# owner's config in config.write, the outage queue in outbox, discovery's records).
#
# A file is written whole to path + ".tmp", closed, then renamed over path. On littlefs
# (the ESP32 default) and the unix port that rename is atomic. MicroPython's FAT rename
# removes the old file, then renames (extmod/vfs_fat.c): a cut between leaves only the
# temp file, written whole and closed before the rename began, and recover() takes it
# back. host_tests/test_power_loss.py cuts the power at every block write of each writer on
# littlefs and FAT, and kills the unix port at random instants of each.

import json
import os
from errno import ENOENT

CONFIG = "config.json"  # the owner's
CHECKED = "config.checked"  # the config.json the validator last passed, with defaults filled
STATE = "state.json"  # what the dongle learnt (line setting) or made (secret), not config
NEXT = "config.next"  # a config the owner's page saved, checked at the next boot (startup)
REFUSED = "config.refused"  # {"config", "problems"}: one that boot check refused


def recover(path):
    """Take path + ".tmp" back as path when path is missing: after a cut inside FAT's
    rename it is the only copy. Never over a path that is there but fails to open now."""
    try:
        os.stat(path)
        return
    except OSError as e:
        if e.errno != ENOENT:
            return
    try:
        os.rename(path + ".tmp", path)
    except OSError:  # no temp file either: never written
        pass


def replace(path):
    """Put path + ".tmp", written whole and closed, in path's place: MicroPython's os.rename
    replaces on every file system it has, as CPython's does on the POSIX hosts that run the
    firmware's tests."""
    os.rename(path + ".tmp", path)


def load_json(path):
    """The JSON value kept in path; {} when there is none, or it is not JSON (as if never
    written: the checked config is checked anew, the line setting found anew)."""
    recover(path)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_json(path, value):
    """Keep value in path as JSON, so that a power cut leaves the old file or the new one.
    Raises OSError, after removing the temp file, when it cannot be written."""
    recover(path)  # a temp file that is the only copy is not written over
    tmp = path + ".tmp"
    try:
        # Closed before the rename: MicroPython's file systems commit a file on close.
        with open(tmp, "w") as f:
            json.dump(value, f)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass  # no temporary file was made: the error raised below says why
        raise
    replace(path)
