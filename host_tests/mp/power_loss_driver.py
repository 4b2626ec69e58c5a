"""Writers for the power-loss tests (stress/power_loss.py), run on the MicroPython unix port
with the shipped firmware, in the folder that stands for the dongle's flash.

stdin, first line: the mode; then what that mode reads. stdout: one line per step done,
written unbuffered before the next step starts, so a SIGKILL leaves the host knowing every
step that finished and, at most, the one that was under way.

  config WRITER DIR writes DIR/b.json's config, then DIR/a.json's, then b.json's... to config.json,
                    for ever, printing "w <i>" after each. WRITER is one of
                      push       what `hanctl config push` makes the device do: mpremote's
                                 fs_writefile (open config.json.tmp, 1 KB writes, close),
                                 then the rename code in DIR/replace.py (device._REPLACE)
                      write      firmware/config.py's write()
                      save_json  firmware/store.py's save_json() (config.checked, state.json)
  outbox MS         loads the queue (queue-A.jsonl) as a booting destination does, prints
                    "L <n> <id,id,...>" (len() and the ids of the lines on flash), then runs
                    one operation per stdin line, printing "ok <id>" after each:
                      a <id> <pad>   append a message of that id (<pad> bytes of padding)
                      p              peek, then pop (<id>: the one peeked)
                    MS > 0: through SlowFolder, a pause of MS ms after each write and rename.
  sweep FS          the same writers on littlefs (lfs2) or FAT (fat), the ESP32's file
                    systems, in a RAM block device cut after each of its writes in turn;
                    prints "S <op> <writes> <outcomes>" per operation, or "BAD ..." lines.
"""

import json
import os
import sys
import time

QUEUE = "queue-A.jsonl"


def say(line):
    # One write: print() writes its pieces one by one, and a kill between them would
    # leave half a line for the host to misread.
    sys.stdout.write(line + "\n")


def message(i, pad):
    # The shape and size of an energy message (~300 bytes), with its id first.
    return '{"id": %d, "meter_time": "2024-03-05T00:00:00", "pad": "%s"}' % (i, "x" * pad)


def ids_on_flash(path):
    """The ids of the queue's complete lines, as a fresh load would see them."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line)["id"])
    except OSError:
        pass  # no queue file: no message
    return out


def config_loop(writer, inputs):
    with open(inputs + "/a.json", "rb") as f:
        texts = [f.read()]
    with open(inputs + "/b.json", "rb") as f:
        texts.insert(0, f.read())
    if writer == "push":
        with open(inputs + "/replace.py") as f:
            replace = f.read()
    elif writer == "write":
        import config

        cfgs = [json.loads(t) for t in texts]
        del texts
    else:
        import store

        cfgs = [json.loads(t) for t in texts]
        del texts
    i = 0
    while True:
        if writer == "push":
            data = texts[i % 2]
            f = open("config.json.tmp", "wb")
            for k in range(0, len(data), 1024):  # hanctl.device.CHUNK
                f.write(data[k : k + 1024])
            f.close()
            exec(replace)
        elif writer == "write":
            config.write(cfgs[i % 2], "config.json")
        else:
            store.save_json("config.json", cfgs[i % 2])
        say("w %d" % i)
        i += 1


class SlowFile:
    def __init__(self, f, ms):
        self.f = f
        self.ms = ms

    def write(self, b):
        n = self.f.write(b)
        time.sleep_ms(self.ms)
        return n

    def read(self, *n):
        return self.f.read(*n)

    def readline(self):
        return self.f.readline()

    def readinto(self, b):
        return self.f.readinto(b)

    def close(self):
        self.f.close()

    def __iter__(self):
        return self

    def __next__(self):
        line = self.f.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


class SlowFolder:
    """A folder of the unix file system as a mounted VFS whose every write and rename is
    followed by a pause: the same syscalls in the same order, with wider gaps between them,
    so that a kill at a random instant lands between two writes of an append (a torn line)
    about as often as anywhere else, not once in thousands."""

    def __init__(self, root, ms):
        self.root = root
        self.ms = ms

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        return SlowFile(open(self.root + path, mode), self.ms)

    def rename(self, old, new):
        os.rename(self.root + old, self.root + new)
        time.sleep_ms(self.ms)

    def stat(self, path):
        return os.stat(self.root + path)


def outbox_run(slow_ms):
    from outbox import Outbox

    path = QUEUE
    if slow_ms:
        import vfs

        vfs.mount(SlowFolder(os.getcwd(), slow_ms), "/slow")
        path = "/slow/" + QUEUE
    box = Outbox(path)
    ids = ids_on_flash(QUEUE)
    head = box.peek()
    if head is not None and json.loads(head)["id"] != ids[0]:
        print("BAD peek", head[:40])
    print("L", len(box), ",".join(str(i) for i in ids))
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        op = line.split()
        if op[0] == "a":
            box.append(message(int(op[1]), int(op[2])))
            say("ok " + op[1])
        else:
            got = json.loads(box.peek())["id"]
            box.pop()
            say("ok %d" % got)


# -- sweep: a power cut after each block write of one operation ---------------------------


class Flash:
    """A RAM block device that stops writing after `budget` program or erase operations:
    what is on it then is what a power cut at that instant leaves. Later writes fail with
    -EIO (returned, not raised: the VFS turns it into the OSError that ends the writer)."""

    def __init__(self, data, block=512):
        self.data = bytearray(data)
        self.block = block
        self.budget = -1  # no cut
        self.writes = 0

    def readblocks(self, n, buf, off=0):
        a = n * self.block + off
        for i in range(len(buf)):  # no slice: a file's finalizer may read with the heap locked
            buf[i] = self.data[a + i]

    def _dead(self):
        if self.writes == self.budget:
            return True  # the power is gone; nothing more reaches the flash
        self.writes += 1
        return False

    def writeblocks(self, n, buf, off=None):
        if self._dead():
            return -5
        a = n * self.block + (off or 0)
        self.data[a : a + len(buf)] = buf
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block
        if op == 5:
            return self.block
        if op == 6:  # erase (littlefs): a write like any other for the cut
            if self._dead():
                return -5
            a = arg * self.block
            for i in range(a, a + self.block):
                self.data[i] = 0xFF
        return 0


def register(k):
    """The hourly List 3 of hour k from 2026-01-01 00:00 (~1.2 kWh an hour, varied)."""
    t = "2026-01-%02dT%02d:00:05" % (1 + k // 24, k % 24)
    return {"meter_time": t, "active_energy_import": (7000000 + k * 1200 + k * k % 700, -3)}


class Cut(Exception):
    pass


def said(*words):
    # tariff.Account logs a failed write and goes on; here that is the cut, so it ends the op
    if words[0] == "tariff: state not saved:":
        raise OSError(5)
    raise Cut(" ".join(str(w) for w in words))  # anything else it says is a finding


def tariff_hours(ks):
    """The tariff's writer: a booting dongle's account, then registers that close hours
    (tariff.py writes tariff.json through store.save_json at each)."""
    import tariff

    os.chdir("/flash")
    try:
        account = tariff.Account({}, [], said)
        for k in ks:
            account.offer(register(k), 0)
    finally:
        os.chdir("/")


def sweep(fs_name):
    import vfs

    import config
    import store
    from outbox import Outbox

    kind = vfs.VfsLfs2 if fs_name == "lfs2" else vfs.VfsFat
    a, b = (json.loads(open(n).read()) for n in ("a.json", "b.json"))
    q = "/flash/" + QUEUE
    c = "/flash/config.json"
    st = "/flash/state.json"  # the dongle's learnt line and its secret salt (dongle.py)
    ops = (
        ("append", lambda: Outbox(q).append(message(5, 200))),
        ("pop", lambda: Outbox(q).pop()),
        ("append-full", lambda: Outbox(q, capacity=5).append(message(5, 200))),
        ("config.write", lambda: config.write(b, c)),
        ("save_json", lambda: store.save_json(c, b)),
        ("state.json", lambda: store.save_json(st, {"salt": "b"})),
        ("tariff.json", lambda: tariff_hours((60,))),
    )
    # Before: a queue of messages 0..4, config.json holding a. After: the operation's.
    want = {
        "append": ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]),
        "pop": ([0, 1, 2, 3, 4], [1, 2, 3, 4]),
        # The oldest gives way first: with the power cut between, both are gone.
        "append-full": ([0, 1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4, 5]),
    }
    flash = Flash(b"\xff" * (128 * 512))
    kind.mkfs(flash)
    vfs.mount(kind(flash), "/flash")
    for i in range(5):
        Outbox(q).append(message(i, 200))
    config.write(a, c)
    store.save_json(st, {"salt": "a"})
    tariff_hours(range(60))  # 2.5 days of hours: a state of ~600 B, two blocks and more
    tariff_a = store.load_json("/flash/tariff.json")
    vfs.umount("/flash")
    image = bytes(flash.data)
    # What the tariff's writer leaves when nothing cuts it: the "after" of its sweep.
    vfs.mount(kind(Flash(image)), "/flash")
    tariff_hours((60,))
    tariff_b = store.load_json("/flash/tariff.json")
    assert tariff_b != tariff_a
    vfs.umount("/flash")
    for name, op in ops:
        cut = 0
        outcomes = {}
        while True:
            flash = Flash(image)
            flash.budget = cut
            vfs.mount(kind(flash), "/flash")
            try:
                op()
                done = True
            except OSError:  # the cut
                done = False
            try:
                vfs.umount("/flash")
            except OSError:  # a dead flash cannot be unmounted cleanly either
                pass
            # The next boot: the same bytes, mounted afresh (a failed mount is a lost fs).
            flash = Flash(flash.data)
            vfs.mount(kind(flash), "/flash")
            if name in want:
                Outbox(q)  # what a booting destination does first (it may repair)
                got = ids_on_flash(q)
                ok = got in want[name]
                seen = (
                    "before"
                    if got == want[name][0]
                    else "after"
                    if got == want[name][-1]
                    else "between"
                    if ok
                    else str(got)
                )
            elif name == "tariff.json":
                got = store.load_json("/flash/tariff.json")  # as tariff.Account reads it
                ok = got == tariff_a or got == tariff_b
                seen = "before" if got == tariff_a else "after" if ok else "broken"
            elif name == "state.json":
                seen = store.load_json(st).get("salt")  # as Dongle() reads it at boot
                ok = seen in ("a", "b")
                seen = "before" if seen == "a" else "after" if ok else str(seen)
            else:
                cfg, problems = config.load(c, unix=True)
                seen = "broken" if problems or cfg is None else cfg["hostname"]
                ok = seen in (a["hostname"], b["hostname"])
                seen = "before" if seen == a["hostname"] else "after" if ok else seen
            vfs.umount("/flash")
            outcomes[seen] = outcomes.get(seen, 0) + 1
            if not ok:
                print("BAD", fs_name, name, "cut after write", cut, "found", seen)
            if done:
                break
            cut += 1
        print("S", name, cut, " ".join("%s=%d" % kv for kv in sorted(outcomes.items())))


def main():
    mode = sys.stdin.readline().split()
    if mode[0] == "config":
        config_loop(mode[1], mode[2])
    elif mode[0] == "outbox":
        outbox_run(int(mode[1]))
    else:
        sweep(mode[1])


main()
