"""Decode HAN bytes with the firmware decoder and print one JSON line per message.

Runs on the MicroPython unix port as `micropython decode_stdin.py [--errors]` with firmware/
on MICROPYPATH, reading raw bytes from stdin. `hanctl decode --runtime cpython` imports this
same file and calls decode_stream(), so both runtimes print through the same lines of code
and see the same chunk boundaries.
"""

import json
import sys

from decoder import Decoder
from reading import to_json

# Bytes per feed(): a UART driver hands over small chunks too, and 256 keeps the
# per-read allocation negligible in a 96K heap.
CHUNK = 256


def print_reading(reading):
    print(to_json(reading))


def error_json(kind, detail):
    # Built by hand, not json.dumps({...}): MicroPython dicts do not keep insertion
    # order (measured on 1.29: {"error", "detail"} dumps as detail first).
    text = '{"error": ' + json.dumps(kind)
    if detail is not None:
        text += ', "detail": ' + json.dumps(detail)
    return text + "}"


def print_error(kind, detail):
    print(error_json(kind, detail))


def ignore_error(kind, detail):
    # Without --errors a rejected frame prints nothing; the decoder still sees it.
    return None


def decode_stream(read, show_errors):
    """Feed everything read(CHUNK) returns, until it returns nothing, to a Decoder."""
    decoder = Decoder(print_reading, print_error if show_errors else ignore_error)
    while True:
        # On the unix port read(n) blocks until n bytes or EOF, so only the last chunk
        # is short, and b"" means EOF.
        chunk = read(CHUNK)
        if not chunk:
            decoder.end()
            return
        decoder.feed(chunk)


def main():
    decode_stream(sys.stdin.buffer.read, "--errors" in sys.argv[1:])


if __name__ == "__main__":
    main()
