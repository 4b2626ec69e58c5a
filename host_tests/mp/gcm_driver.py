"""gcm.Key and security.Context on the cases test_gcm.py writes to stdin, one per line, hex
fields, "-" for an absent one:

    gcm <id> <key> <iv> <aad> <ciphertext> <tag or -> -> "<id> ok <plaintext>" | "<id> fail"
    gmac <id> <key> <iv> <aad> <data> <tag>             -> "<id> ok" | "<id> fail"
    open <id> <key or -> <auth key or -> <apdu>          -> "<id> <kind or ok> <plaintext>
                                                            <counter> <authenticated>"
    path <id> bytecode|any                              -> "<id> native" | "<id> bytecode"
        which GHASH and counter mode run (gcm.gcm_native); bytecode turns the machine code
        off for the Keys made after it, as where gcm_native does not load
    feed <id> <key or -> <auth key or -> <chunk> <stream> -> "<id> <event>|<event>..."
        the stream through a Decoder with those keys, <chunk> bytes a feed() (0: whole),
        then end(); each event "R" + the reading's JSON or "E" + the kind

Each case runs twice on the same objects, the second time under micropython.heap_lock():
" alloc" ends its line when that one allocated (or raised MemoryError). Run under the
MicroPython unix port at -X heapsize=96K, or imported by test_gcm.py on CPython, where
heap_lock is the shim's no-op.
"""

import sys

from micropython import heap_lock, heap_unlock

import gcm
import security


def _bytes(field):
    return None if field == "-" else bytes.fromhex(field)


def _hex(data):
    # MicroPython 1.25: an empty bytearray's hex() is b"", not "".
    return data.hex() if len(data) else ""


def _locked(fn):
    """fn() under heap_lock(): (its result, whether it allocated). The pair is made after
    the unlock: a tuple is a heap object. fn is a closure of at most 5 variables, which
    MicroPython calls with its arguments on the C stack (more go on the heap)."""
    result = None
    alloc = False
    heap_lock()
    try:
        result = fn()
    except MemoryError:
        alloc = True
    finally:
        heap_unlock()
    return result, alloc


def gcm_case(key, iv, aad, ct, tag):
    k = gcm.Key(key)
    n = len(ct)
    buf = bytearray(ct + (tag or b""))
    out = bytearray(n)
    tag_at = n if tag else -1
    tag_len = len(tag) if tag else 12
    a = [iv, aad, buf, 0, n, out, tag_at, tag_len]
    ok = k.decrypt(iv, aad, buf, 0, n, out, tag_at, tag_len)
    again, alloc = _locked(lambda: k.decrypt(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]))
    alloc = alloc or again != ok
    return ("ok " + _hex(out) if ok else "fail") + (" alloc" if alloc else "")


def gmac_case(key, iv, aad, data, tag):
    k = gcm.Key(key)
    buf = bytearray(data + tag)
    n = len(data)
    a = [iv, aad, buf, 0, n, n, len(tag)]
    ok = k.verify(iv, aad, buf, 0, n, n, len(tag))
    again, alloc = _locked(lambda: k.verify(a[0], a[1], a[2], a[3], a[4], a[5], a[6]))
    alloc = alloc or again != ok
    return ("ok" if ok else "fail") + (" alloc" if alloc else "")


def open_case(key, auth_key, apdu):
    ctx = security.Context(key, auth_key)
    n = len(apdu)
    out = bytearray(n)
    kind = ctx.open(apdu, 0, n, out)
    again, alloc = _locked(lambda: ctx.open(apdu, 0, n, out))
    alloc = alloc or again != kind
    plain = _hex(out[ctx.start : ctx.end]) if kind is None else "-"
    line = "%s %s %d %d" % (kind or "ok", plain or "-", ctx.counter, ctx.authenticated)
    return line + (" alloc" if alloc else "")


def feed_case(key, auth_key, chunk, stream):
    import gc

    from decoder import Decoder
    from reading import to_json

    gc.collect()  # the last case's decoder: its 2 KB buffers and GCM tables
    events = []
    d = Decoder(
        lambda r: events.append("R" + to_json(r)),
        lambda kind, detail: events.append("E" + kind),
        keys=(key, auth_key) if key else None,
    )
    step = chunk or len(stream) or 1
    for i in range(0, len(stream), step):
        d.feed(stream[i : i + step])
    d.end()
    return "|".join(events) or "-"


def run(line):
    f = line.split(" ")
    what, case = f[0], f[1]
    if what == "path":
        if f[2] == "bytecode":
            gcm.gcm_native = None
        return case + (" native" if gcm.gcm_native else " bytecode")
    if what == "feed":
        key, auth_key, chunk, stream = _bytes(f[2]), _bytes(f[3]), int(f[4]), _bytes(f[5])
        line = f = None  # the stream's hex: 3 KB of a 96K heap that the decoder needs
        return case + " " + feed_case(key, auth_key, chunk, stream or b"")
    args = [_bytes(x) for x in f[2:]]
    if what == "gcm":
        key, iv, aad, ct, tag = args
        return case + " " + gcm_case(key, iv, aad or b"", ct or b"", tag)
    if what == "gmac":
        key, iv, aad, data, tag = args
        return case + " " + gmac_case(key, iv, aad or b"", data or b"", tag)
    key, auth_key, apdu = args
    return case + " " + open_case(key, auth_key, bytearray(apdu or b""))


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = [line.strip()]  # run() drops the text once it is read (a `feed` stream's)
        if line[0]:
            print(run(line.pop()))


if __name__ == "__main__":
    main()
