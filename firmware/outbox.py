# The outage queue: hourly energy messages one destination has not yet acknowledged.
#
# Kept in a file, not in RAM: 48 hourly messages of ~200 bytes would take a tenth of an
# ESP32's heap. Each message is one line, appended when it is made (once an hour), so a
# power cut mid-write loses at most that line (a torn last line is skipped on load). A
# delivered message is removed by rewriting the rest to a temp file and renaming it over
# the queue: the file is then the old or the new one, never a mix. On littlefs (the ESP32
# default) and the unix port that rename is atomic; FAT's is not (see _load).
# host_tests/test_power_loss.py cuts the power at every block write of these on littlefs
# and FAT, and kills the unix port at random instants of each.

import os
from errno import ENOENT


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
        try:
            f = open(self.path)
        except OSError as e:
            # MicroPython's FAT rename removes the old file, then renames (vfs_fat.c): a
            # cut between leaves only the temp file, which was written whole and closed
            # before the rename began. Without this, that cut lost the whole queue. Only
            # when the queue is missing: never over one that failed to open for now.
            if e.errno != ENOENT:
                return False
            try:
                os.rename(self.path + ".tmp", self.path)
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
        os.rename(tmp, self.path)
        self.count = kept
