"""What must hold for every input the decoder is given; shared by the atheris harness
(fuzz_decoder.py) and the CI fuzz (host_tests/test_fuzz.py).

For each input (see corpus.py for its modes), Harness.run():
  - feeds it whole to a long-lived decoder that is end()ed after each input; its readings
    and rejections must equal those of a fresh decoder fed the same bytes one at a time,
    and of another fed them in random chunks through one reused 256-byte buffer with
    feed(buf, n), as the UART reader does (the decoder is a push parser, and nothing may
    carry over from earlier inputs once end() has closed the stream);
  - feeds it in random chunks to a second long-lived decoder that only ever sees idle(),
    and not after every input, as a dongle runs for months;
  - after each decoder: no exception escaped feed/idle/end/apdu, every rejection is a known
    kind, none is `internal` (a decoder bug met) or `memory`, every reading is a dict of
    exact values that to_json prints, and the buffers keep their preallocated sizes;
  - every 256 inputs, everything the long-lived decoders hold is weighed (footprint()):
    it must stay under FOOTPRINT_LIMIT however many inputs went by.
A broken property raises Defect with the input in hex, which is its reproduction.
"""

import gc
import random
import sys
import types
import zlib
from collections import Counter

import errors
import framing
from decoder import INCOMPLETE, INTERNAL, MEMORY, NOISE, Decoder
from reading import to_json
from stress.fuzz import corpus

MAX_FRAME = 2048
COUNTER = "counter"  # an invocation counter that did not grow (security.py): history's
KNOWN = frozenset(
    framing.KINDS
    + (errors.MALFORMED, errors.TRUNCATED, errors.UNSUPPORTED, errors.ENCRYPTED)
    + (errors.SEGMENT, errors.NESTING, errors.OVERSIZE)
    + (INCOMPLETE, MEMORY, INTERNAL, NOISE)
    + (errors.DECRYPT, COUNTER)  # with keys only
)
FAILING = frozenset((INTERNAL, MEMORY))  # a decoder bug met, or a reading the heap refused
# Three 2 KB buffers (frame, split APDU, block transfer) and the last reading, on CPython's
# object sizes; measured at most 13.7 KB over a million atheris inputs.
FOOTPRINT_LIMIT = 48 * 1024
UART_BUF = 256  # meterlink.py reads the UART 256 bytes at a time
# The assembler's work (framing.Assembler.work: bytes its judges read, headers, checksums
# and P1 lines) per byte fed, bounded whatever the bytes. Real and mutated streams: ~1.
# The hostile blocks of `hanctl bench --hostile`: at most 10.6 (`7ea5ff8d`, an HDLC header
# every 4 bytes whose FCS is checked, run from marks: firmware/marks.py). Before the ring, 2 KB of
# `7ea7` cost ~960 per byte; before the marks, `7ea5ff8d` 307, and HDLC headers 8 bytes
# apart, each 2 KB long and ending on a flag, 219.
WORK_PER_BYTE = 12


class Defect(Exception):
    """A property of the decoder broke on an input; str() has the input in hex."""


class _Events:
    """Readings and rejections of one decoder, in order."""

    def __init__(self):
        self.events = []

    def reading(self, r):
        if not isinstance(r, dict):
            raise Defect(f"reading is not a dict: {r!r}")
        for k, v in r.items():
            if not isinstance(k, str) or not _exact(v):
                raise Defect(f"reading field {k!r} = {v!r} is not an exact value")
        self.events.append(("R", to_json(r)))

    def error(self, kind, detail):
        self.events.append(("E", kind, detail))


def _exact(v):
    if v is None or isinstance(v, (bool, int, str)):
        return True
    return (
        isinstance(v, tuple)
        and len(v) == 2
        and isinstance(v[0], int)
        and isinstance(v[1], int)
        and v[1] < 0
    )


class Harness:
    """Runs inputs through the decoders described above.

    reference: the Decoder class of the reference decode (the atheris harness passes one
    whose modules are instrumented, so coverage comes from that decode only and the other
    decoders run at full speed); switch(traced) is called with True before that decode and
    False after it (the atheris harness swaps sys.modules for the lazily imported modules).
    checking: the Decoder class of the others (a test passes a broken one).
    keys: (key, auth key or None) every decoder is given, for ciphered inputs. The
    invocation counter is a long-lived decoder's memory of earlier inputs, so its `counter`
    reports are left out where a fresh decoder's events are compared with it.
    """

    def __init__(self, max_frame=MAX_FRAME, reference=None, switch=None, checking=None, keys=None):
        self.max_frame = max_frame
        self.switch = switch or (lambda traced: None)
        self.checking = checking or Decoder
        self.keys = keys
        self.ended = _Events()
        self.long_ended = (reference or Decoder)(
            self.ended.reading, self.ended.error, max_frame, keys=keys
        )
        self.lived = _Events()
        self.long_lived = self.checking(self.lived.reading, self.lived.error, max_frame, keys=keys)
        self.uart = bytearray(UART_BUF)
        self.inputs = 0
        self.modes = Counter()
        self.kinds = Counter()
        self.readings = 0
        self.max_footprint = 0

    def run(self, data):
        """Check every property on one input (bytes); raises Defect."""
        self.inputs += 1
        try:
            self._run(data)
        except Defect as e:
            raise Defect(f"{e}\n  input ({len(data)} bytes): {data.hex()}") from None
        except Exception as e:
            raise Defect(
                f"{type(e).__name__} escaped the decoder: {e!r}\n"
                f"  input ({len(data)} bytes): {data.hex()}"
            ) from e

    def _run(self, data):
        if not data:
            return
        mode = data[0] % corpus.MODES
        body = data[1:]
        self.modes[mode] += 1
        rng = random.Random(zlib.crc32(data))
        if mode == corpus.SEALED:
            body = corpus.seal(body)

        # The reference: whole, into a decoder that has seen every input before this one.
        self.ended.events = []
        self.switch(True)
        try:
            if mode == corpus.APDU:
                self.long_ended.apdu(body, len(body))
            else:
                self.long_ended.feed(body)
            self.long_ended.end()
        finally:
            self.switch(False)
        want = self.ended.events
        self._events(want)
        want = _without_counter(want)
        self._bounded(self.long_ended)

        # A fresh decoder, byte by byte and in UART-sized chunks: the same, exactly.
        if mode == corpus.APDU:
            got = self._fresh(lambda d: d.apdu(memoryview(body), len(body)))
            if got != want:
                raise Defect(f"apdu() of a memoryview differs: {got!r} != {want!r}")
        else:
            got = self._fresh(lambda d: _bytewise(d, body))
            if got != want:
                raise Defect("byte by byte differs: " + _diff(got, want))
            got = self._fresh(lambda d: _chunked(d, body, rng, self.uart))
            if got != want:
                raise Defect("in chunks differs: " + _diff(got, want))
            linear_work(body, WORK_PER_BYTE, self.max_frame)

        # The dongle's decoder: chunks, idle() when the line goes quiet, never end().
        self.lived.events = []
        if mode == corpus.APDU:
            self.long_lived.apdu(body, len(body))
        else:
            _chunked(self.long_lived, body, rng, self.uart)
            if rng.random() < 0.75:  # else the next input continues the stream
                self.long_lived.idle()
        self._events(self.lived.events)
        self._bounded(self.long_lived)
        if self.inputs % 256 == 0:
            self.weigh()

    def _fresh(self, feed):
        """Events of a new decoder given the input by feed(decoder), then end()."""
        ev = _Events()
        d = self.checking(ev.reading, ev.error, self.max_frame, keys=self.keys)
        feed(d)
        d.end()
        return _without_counter(ev.events)

    def _events(self, events):
        for e in events:
            if e[0] == "R":
                self.readings += 1
                continue
            kind = e[1]
            self.kinds[kind] += 1
            if kind not in KNOWN:
                raise Defect(f"unknown rejection kind {kind!r} (detail {e[2]!r})")
            if kind in FAILING:
                raise Defect(f"rejected as {kind!r}: {e[2]!r}")

    def _bounded(self, d):
        a = d.assembler
        problems = []
        if len(a.buf) != self.max_frame or a.max_frame != self.max_frame:
            problems.append(f"frame buffer is {len(a.buf)} bytes")
        if not 0 <= a._len <= self.max_frame or (a._len > 1 and not a.busy()):  # unsearched
            problems.append(f"assembler holds {a._len} bytes, busy={a.busy()}")
        if sorted(a.rejected) != sorted(framing.KINDS) or len(a.frames) != 4:
            problems.append(f"assembler counters {a.rejected!r} {a.frames!r}")
        if not (0 <= a.noise < 2**29 and 0 <= a.bytes_in < 2**29):
            problems.append("assembler counters wrapped wrong")
        if d.link.apdu is not None and len(d.link.apdu) != self.max_frame:
            problems.append(f"split-APDU buffer is {len(d.link.apdu)} bytes")
        if d.blocks is not None and len(d.blocks.apdu) != self.max_frame:
            problems.append(f"block buffer is {len(d.blocks.apdu)} bytes")
        if not set(d.errors) <= KNOWN:
            problems.append(f"error counters {d.errors!r}")
        if len(d.normalizer.positional) > self.max_frame:
            problems.append(f"{len(d.normalizer.positional)} positional values kept")
        if problems:
            raise Defect("; ".join(problems))

    def weigh(self):
        """Weigh both long-lived decoders; raises Defect past FOOTPRINT_LIMIT."""
        for d in (self.long_ended, self.long_lived):
            size = footprint(d)
            self.max_footprint = max(self.max_footprint, size)
            if size > FOOTPRINT_LIMIT:
                raise Defect(f"a long-lived decoder holds {size} bytes after {self.inputs} inputs")

    def summary(self):
        m = self.modes
        return (
            f"inputs={self.inputs} raw={m[corpus.RAW]} sealed={m[corpus.SEALED]} "
            f"apdu={m[corpus.APDU]} readings={self.readings} "
            f"max_footprint={self.max_footprint} kinds={dict(sorted(self.kinds.items()))}"
        )


def linear_work(body, per_byte, max_frame=MAX_FRAME, assembler=framing.Assembler):
    """The frame search's work on body (bytes) fed whole, then idle(): at most per_byte
    for each byte plus one frame's worth, whatever the bytes. Raises Defect."""
    a = assembler(lambda kind, buf, n: None, None, max_frame)
    a.feed(body)
    a.idle()
    if a.work > per_byte * len(body) + max_frame:
        raise Defect(f"frame search examined {a.work} bytes for {len(body)} fed")
    return a.work


def _without_counter(events):
    return [e for e in events if e[0] != "E" or e[1] != COUNTER]


def _bytewise(d, body):
    for i in range(len(body)):
        d.feed(body[i : i + 1])


def _chunked(d, body, rng, buf):
    """body in random chunks of 1..len(buf) bytes, each copied into buf and fed with n."""
    i = 0
    while i < len(body):
        k = min(rng.choice((1, 2, 3, 7, 16, 64, 255, 256, rng.randrange(1, 257))), len(body) - i)
        buf[0:k] = body[i : i + k]
        d.feed(buf, k)
        i += k


def _diff(got, want):
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"event {i}: {g!r} != {w!r}"
    extra = (got[len(want) :] or want[len(got) :])[:2]
    return f"{len(got)} events != {len(want)}: {extra!r}"


_NOT_HELD = (type, types.ModuleType, types.FunctionType, types.MethodType, types.CodeType)
_NOT_HELD += (types.BuiltinFunctionType, types.BuiltinMethodType)


def footprint(root):
    """Bytes of every object reachable from root (functions, classes and modules are
    shared code, not what it holds), on CPython's sys.getsizeof."""
    seen = set()
    stack = [root]
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _NOT_HELD):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total
