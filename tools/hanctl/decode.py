"""`hanctl decode`: run the firmware decoder over a capture and print JSON lines.

The capture is hex text (what meter forums and the shared vectors hold) or raw bytes (what
a serial dump holds); hex is turned into bytes here, so the decoder only ever sees bytes.
"""

import argparse
import importlib.util
import os
import re
import stat
import subprocess
import sys

from . import runtime

SCRIPT = runtime.MP_DIR / "decode_stdin.py"
RUNTIMES = ("micropython", "cpython")
# Bytes per read of the capture (below 64 KiB: a read is one --chunked record).
READ = 32768
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.split() splits at
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_TOKEN = re.compile(rb"(?:0[xX])?[0-9a-fA-F]+")
_CUT_TOKEN = re.compile(rb"(?:0[xX])?[0-9a-fA-F]*")
_PREFIX = re.compile(rb"(\s)0[xX]")


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
        "--key",
        type=key_arg,
        metavar="HEX",
        help="an encrypting meter's AES-128 key from the grid company (32 hex digits)",
    )
    parser.add_argument(
        "--auth-key",
        type=key_arg,
        metavar="HEX",
        help="its authentication key, where the meter authenticates (32 hex digits)",
    )
    parser.add_argument(
        "--heap",
        default=runtime.DEFAULT_HEAP,
        type=_heap_arg,
        help="MicroPython heap size, e.g. 96K (default %(default)s)",
    )
    parser.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    parser.set_defaults(run=run_command)


def key_arg(text):
    """An AES-128 key given on the command line (decode, simulate): 32 hex digits."""
    text = text.strip()
    if len(text) != 32 or text.strip("0123456789abcdefABCDEF"):
        # Never echoed: a key is a secret, even a mistyped one.
        raise argparse.ArgumentTypeError("a key is 32 hex digits (16 bytes)")
    return text.lower()


def _heap_arg(text):
    try:
        return runtime.check_heap(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def run_command(args):
    try:
        capture = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    except OSError as err:
        print(f"hanctl decode: {err}", file=sys.stderr)
        return 2
    try:
        if args.auth_key and not args.key:
            print("hanctl decode: --auth-key needs --key", file=sys.stderr)
            return 2
        keys = (args.key, args.auth_key) if args.key else None
        return decode(capture.fileno(), args.runtime, args.errors, args.heap, keys)
    except (OSError, ValueError) as err:
        print(f"hanctl decode: {err}", file=sys.stderr)
        return 2
    except runtime.MissingInterpreter as err:
        print(f"hanctl decode: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if capture is not sys.stdin.buffer:
            capture.close()


def decode(fd, runtime_name, show_errors=False, heap=runtime.DEFAULT_HEAP, keys=None):
    """Decode the capture read from the file descriptor fd, printing the decoder's lines
    to stdout as its frames arrive; returns the exit status. Raises ValueError when hex
    text turns out not to be hex (after printing what came before). keys: (key hex,
    auth key hex or None) for a meter that encrypts."""
    head, whole, regular = _head(fd)
    hex_text = looks_hex(head, whole)
    chunks = _chunks(fd, b"" if regular else head, hex_text)
    sys.stdout.flush()  # the decoder writes to our stdout: what we printed comes first
    if runtime_name == "cpython":
        return _decode_cpython(chunks, show_errors, keys)
    argv = runtime.micropython_argv(SCRIPT, heap) + (["--errors"] if show_errors else [])
    env = runtime.micropython_env()
    if keys:
        env["HANPORT_METER_KEY"] = keys[0]
        if keys[1]:
            env["HANPORT_METER_AUTH_KEY"] = keys[1]
    if regular and not hex_text:
        # Raw bytes in a file: the interpreter reads them itself, none pass through here.
        status = subprocess.run(argv, stdin=fd, env=env).returncode
    else:
        status = _pump(argv + ["--chunked"], env, chunks)
    # A child killed by a signal reports -N; a shell would say 128+N.
    return status if status >= 0 else 128 - status


def _head(fd):
    """(head, whole, regular): the capture's first bytes, whether they are all of it, and
    whether fd is a regular file (its head is read with pread, so it is read again)."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        head = os.pread(fd, READ, os.lseek(fd, 0, os.SEEK_CUR))
        return head, len(head) < READ, True
    head = b""
    while len(head) < READ and not head.strip():  # what comes first, past any whitespace
        piece = os.read(fd, READ)  # what has arrived, at least a byte: no waiting for more
        if not piece:
            return head, True, False
        head += piece
    return head, False, False


def _chunks(fd, head, hex_text):
    """The capture's bytes as they arrive, head (already read) first; hex text converted."""
    text = HexText() if hex_text else None
    piece = head or os.read(fd, READ)
    while piece:
        data = text.feed(piece) if text else piece
        if data:
            yield data
        piece = os.read(fd, READ)
    if text:
        data = text.end()
        if data:
            yield data


def _pump(argv, env, chunks):
    """Run decode_stdin.py --chunked, handing it each chunk as a record as it arrives;
    returns its exit status once it has decoded them all."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    try:
        with proc.stdin as pipe:  # closed: the end of the capture, also after bad hex
            for chunk in chunks:
                for i in range(0, len(chunk), 0xFFFF):  # a record's length has 16 bits
                    piece = chunk[i : i + 0xFFFF]
                    pipe.write(len(piece).to_bytes(2, "big") + piece)
                pipe.flush()
    except BrokenPipeError:
        pass  # the decoder ended early: its status says why
    finally:
        status = proc.wait()
    return status


def looks_hex(head, whole=True):
    """Whether a capture that begins with head is hex text: whitespace-separated tokens of
    hex digits, each optionally prefixed 0x (unless head is the whole capture, its last
    token may be cut short). Raw HAN data never passes for hex: an HDLC flag 0x7E is "~",
    a P1 telegram starts "/", an M-Bus telegram 0x68 "h"."""
    if b"x" not in head and b"X" not in head:
        return not head.translate(None, _WHITESPACE + _HEX_DIGITS)
    tokens = head.split()
    if not whole and tokens and head[-1:] not in _WHITESPACE:
        if not _CUT_TOKEN.fullmatch(tokens.pop()):
            return False
    return all(_TOKEN.fullmatch(t) for t in tokens)


class HexText:
    """Bytes of hex text that comes in pieces, cut anywhere: the digits of all tokens
    joined, so "7e a0 27" and "7ea027" are the same bytes, a 0x before a token dropped."""

    def __init__(self):
        self.held = b""  # a "0" that ended a piece at a token's start: maybe "0x" follows
        self.nibble = b""  # the odd digit, waiting for its pair
        self.digits = 0
        self.token_start = True  # the next piece starts a token

    def feed(self, piece):
        text = self.held + piece
        self.held = b""
        start = self.token_start
        if text:
            self.token_start = text[-1:] in _WHITESPACE
            if text[-1:] == b"0" and (text[-2:-1] in _WHITESPACE if len(text) > 1 else start):
                self.held, text = b"0", text[:-1]
                self.token_start = True
        if b"x" in text or b"X" in text:
            text = _PREFIX.sub(rb"\1", (b" " if start else b"") + text)
        digits = self.nibble + text.translate(None, _WHITESPACE)
        self.digits += len(digits) - len(self.nibble)
        self.nibble = digits[len(digits) & ~1 :]
        try:
            return bytes.fromhex(digits[: len(digits) & ~1].decode("ascii"))
        except ValueError:
            raise ValueError(
                f"hex input has something other than hex digits near digit {self.digits}"
            ) from None

    def end(self):
        """The last bytes; ValueError when an odd digit is left over."""
        data = self.feed(b" ")  # a "0" held back was a digit after all
        if self.nibble:
            raise ValueError(f"hex input has an odd number of digits ({self.digits})")
        return data


def parse_capture(data):
    """Bytes of a whole capture: hex text decoded, anything else returned as it is."""
    if not looks_hex(data):
        return data
    text = HexText()
    return text.feed(data) + text.end()


def _decode_cpython(chunks, show_errors, keys=None):
    runtime.use_firmware_in_cpython()
    # Imported only now: the script's `from decoder import Decoder` needs firmware/ on the path.
    spec = importlib.util.spec_from_file_location("hanctl_mp_decode_stdin", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    if keys:
        keys = bytes.fromhex(keys[0]), bytes.fromhex(keys[1]) if keys[1] else None
    script.decode_stream(_Reader(chunks).readinto, sys.stdout.buffer, show_errors, keys)
    return 0


class _Reader:
    """readinto() over chunks of bytes, as decode_stream() reads a stream."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.rest = memoryview(b"")

    def readinto(self, buf):
        while not self.rest:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.rest = memoryview(chunk)
        n = min(len(buf), len(self.rest))
        buf[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n
