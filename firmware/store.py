# What the dongle keeps on flash, through a power cut: whole files (the state and the
# checked config of startup, the owner's config of config.write, discovery's records) and
# the outage queue (Outbox). One way to write a file and one way back after a cut serve
# them all, so host_tests/test_power_loss.py tests one implementation: it cuts the power at
# every block write of each on littlefs and FAT, and kills the unix port at random
# instants of each. One module, not two: a module of its own cost 416 B of heap more.
#
# A file is written whole to path + ".tmp", closed, then renamed over path. On littlefs
# (the ESP32 default) and the unix port that rename is atomic. MicroPython's FAT rename
# removes the old file, then renames (extmod/vfs_fat.c): a cut between leaves only the
# temp file, written whole and closed before the rename began, and recover() takes it
# back.

import json
import os
from errno import ENOENT

CONFIG = "config.json"  # the owner's
CHECKED = "config.checked"  # the config.json the validator last passed, with defaults filled
STATE = "state.json"  # what the dongle learnt (line setting) or made (secret), not config


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
    """Put path + ".tmp", written whole and closed, in path's place (CPython's os.replace
    on a host; MicroPython's os.rename replaces on every file system it has)."""
    getattr(os, "replace", os.rename)(path + ".tmp", path)


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
        with open(tmp, "w") as f:
            json.dump(value, f)
            if hasattr(os, "fsync"):  # CPython; MicroPython's file systems commit on close
                f.flush()
                os.fsync(f.fileno())
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass  # no temporary file was made: the error raised below says why
        raise
    replace(path)


# The outage queue: hourly energy messages one destination has not yet acknowledged.
#
# Kept in a file, not in RAM: 48 hourly messages of ~200 bytes would take a tenth of an
# ESP32's heap. Each message is one line, appended when it is made (once an hour), so a
# power cut mid-write loses at most that line (a torn last line is skipped on load). A
# delivered message is removed by rewriting the rest to a temp file and putting it in the
# queue's place (replace(): the old file or the new one, never a mix).


class Outbox:
    def __init__(self, path, capacity=48):
        self.path = path
        self.capacity = capacity
        self.dropped = 0  # messages pushed out by newer ones while the queue was full
        self.count = 0
        if self._load():  # torn by a power cut: rewrite without it
            self._rewrite(0)

    def _load(self):
        """Count the complete lines; True when the last one is torn."""
        recover(self.path)  # before it, a cut in FAT's rename lost the whole queue
        try:
            f = open(self.path)
        except OSError:  # no queue yet
            return False
        with f:
            for line in f:
                if not line.endswith("\n"):
                    return True  # only the last line can be torn: appends go at the end
                self.count += 1
        return False

    def __len__(self):
        return self.count

    def append(self, text):
        if self.count >= self.capacity:
            self.dropped += 1
            self._rewrite(1)  # the oldest gives way: the newest energy is the one to keep
        with open(self.path, "a") as f:
            f.write(text)
            f.write("\n")
        self.count += 1

    def peek(self):
        """The oldest message, or None."""
        if not self.count:
            return None
        with open(self.path) as f:
            return f.readline()[:-1]

    def pop(self):
        """Forget the oldest message (it was acknowledged)."""
        if self.count:
            self._rewrite(1)

    def _rewrite(self, skip):
        tmp = self.path + ".tmp"
        kept = 0
        with open(self.path) as src, open(tmp, "w") as dst:
            for line in src:
                if not line.endswith("\n"):
                    break
                if skip:
                    skip -= 1
                    continue
                dst.write(line)
                kept += 1
        replace(self.path)
        self.count = kept
