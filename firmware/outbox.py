# The outage queue: hourly energy messages one destination has not yet acknowledged.
#
# Kept in a file, not in RAM: 48 hourly messages of ~200 bytes would take a tenth of an
# ESP32's heap. Each message is one line, appended when it is made (once an hour), so a
# power cut mid-write loses at most that line (a torn last line is skipped on load). A
# delivered message is removed by rewriting the rest to a temp file and putting it in the
# queue's place (store.py: the old file or the new one, never a mix, and the temp file
# taken back after a cut inside FAT's rename). host_tests/test_power_loss.py cuts the
# power at every block write of these on littlefs and FAT, and kills the unix port at
# random instants of each.

import store


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
        store.recover(self.path)  # before it, a cut in FAT's rename lost the whole queue
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
        store.replace(self.path)
        self.count = kept
