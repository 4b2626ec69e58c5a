"""`hanctl decode`: run the firmware decoder over a capture and print JSON lines.

The capture is hex text (what meter forums and the shared vectors hold) or raw bytes (what
a serial dump holds); hex is turned into bytes here, so the decoder only ever sees bytes.
"""

import argparse
import importlib.util
import io
import subprocess
import sys

from . import runtime

SCRIPT = runtime.MP_DIR / "decode_stdin.py"
RUNTIMES = ("micropython", "cpython")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def register(subparsers):
    parser = subparsers.add_parser(
        "decode",
        help="decode a capture (hex text or raw bytes) with the firmware decoder",
        description="Decode a capture with the firmware decoder and print one JSON line "
        "per message. FILE holds hex text (whitespace and 0x prefixes allowed) or raw bytes.",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="micropython",
        help="run the decoder on the MicroPython unix port (default) or in this CPython",
    )
    parser.add_argument("--errors", action="store_true", help="also print rejected frames")
    parser.add_argument(
        "--heap",
        default=runtime.DEFAULT_HEAP,
        type=_heap_arg,
        help="MicroPython heap size, e.g. 96K (default %(default)s)",
    )
    parser.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    parser.set_defaults(run=run_command)


def _heap_arg(text):
    try:
        return runtime.check_heap(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def run_command(args):
    try:
        data = parse_capture(read_input(args.file))
    except (OSError, ValueError) as err:
        print(f"hanctl decode: {err}", file=sys.stderr)
        return 2
    try:
        return decode(data, args.runtime, args.errors, args.heap)
    except runtime.MissingInterpreter as err:
        print(f"hanctl decode: {err}", file=sys.stderr)
        return 1


def read_input(name):
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as capture:
        return capture.read()


def parse_capture(data):
    """Bytes of a capture: hex text decoded, anything else returned as it is.

    Hex text is whitespace-separated tokens of hex digits, each optionally prefixed 0x;
    the digits of all tokens are joined, so "7e a0 27" and "7ea027" are the same bytes.
    Raw HAN data never passes for hex: an HDLC flag 0x7E is "~", a P1 telegram starts "/".
    """
    digits = []
    for token in data.split():
        if token[:2] in (b"0x", b"0X"):
            token = token[2:]
        if not token or not _HEX_DIGITS.issuperset(token):
            return data
        digits.append(token)
    joined = b"".join(digits)
    if len(joined) % 2:
        raise ValueError(f"hex input has an odd number of digits ({len(joined)})")
    return bytes.fromhex(joined.decode("ascii"))


def decode(data, runtime_name, show_errors=False, heap=runtime.DEFAULT_HEAP):
    """Print the decoder's lines for `data` to stdout; returns the exit status."""
    if runtime_name == "cpython":
        return _decode_cpython(data, show_errors)
    return _decode_micropython(data, show_errors, heap)


def _decode_micropython(data, show_errors, heap):
    argv = runtime.micropython_argv(SCRIPT, heap)
    if show_errors:
        argv.append("--errors")
    # The child writes straight to our stdout; what we printed before must come first.
    sys.stdout.flush()
    status = subprocess.run(argv, input=data, env=runtime.micropython_env()).returncode
    # A child killed by a signal reports -N; a shell would say 128+N.
    return status if status >= 0 else 128 - status


def _decode_cpython(data, show_errors):
    runtime.use_firmware_in_cpython()
    # Imported only now: the script's `from decoder import Decoder` needs firmware/ on the path.
    spec = importlib.util.spec_from_file_location("hanctl_mp_decode_stdin", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.decode_stream(io.BytesIO(data).read, show_errors)
    return 0
