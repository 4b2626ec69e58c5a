"""Decode test cases with the firmware decoder; runs on MicroPython and CPython alike.

Input, one case per line: "<id> <framing> <hex>[,<hex>...]". framing is hdlc/mbus/p1
(bytes fed to Decoder.feed as a stream, then end()), llc (E6 E7 00 + APDU) or apdu.
Output lines, each starting with the case id:
  R <id> <canonical JSON>      a reading
  E <id> <kind> <detail|->     a rejection
  T <id> <json tree>           the A-XDR body of the last Data-Notification (bytes as "b:hex")
  N <id> <ISO time|->          the Data-Notification's own date-time
"""

import gc
import json
import sys

import axdr
import dlms
from decoder import Decoder
from reading import to_json


def _hex(b):
    return "".join("%02x" % c for c in b)


def tree(r, depth=0):
    """The A-XDR element at r as nested lists: the comparison with dlms-cosem needs the
    whole structure, which the dongle never builds."""
    if depth > 8:
        raise ValueError("nesting")
    tag = r.byte()
    if tag in (1, 2):  # array, structure
        return [tree(r, depth + 1) for _ in range(r.length())]
    return r.scalar(tag)


def _plain(v):
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, bytes):
        return "b:" + _hex(v)
    return v


def _tree_of(note):
    return tree(axdr.Reader(note.data, note.body_pos, note.body.end))


def run_case(case_id, framing, chunks):
    out = []

    def on_reading(reading):
        out.append("R %s %s" % (case_id, to_json(reading)))
        note = decoder.notification
        if note.data is not None:
            t = _tree_of(note)
            out.append("T %s %s" % (case_id, json.dumps(_plain(t))))
            t = dlms.date_time(note.data, note.time) if note.time is not None else None
            out.append("N %s %s" % (case_id, t or "-"))

    def on_error(kind, detail):
        out.append("E %s %s %s" % (case_id, kind, detail or "-"))

    decoder = Decoder(on_reading, on_error)
    if framing in ("llc", "apdu"):
        data = chunks[0]
        if framing == "llc":
            data = data[3:]
        decoder.apdu(data, len(data))
    else:
        for c in chunks:
            decoder.feed(c)
        decoder.end()
    return out


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        case_id, framing, payload = line.split(" ")
        chunks = [bytes.fromhex(h) for h in payload.split(",")]
        for text in run_case(case_id, framing, chunks):
            print(text)
        gc.collect()  # one decoder at a time, as on the device


if __name__ == "__main__":
    main()
