# The decoder the dongle and the host tests both run: bytes in, canonical readings out.
#
#   feed(chunk) -> framing.Assembler -> link.Link (HDLC segments, M-Bus telegrams)
#     -> gbt.Blocks (general block transfer) -> dlms.Notification -> normalize -> reading
#   P1 telegrams go from the assembler straight to p1.decode; a telegram inside a ciphered
#   APDU (Luxembourg's P1) too, which opens it with p1cipher.open.
#
# Every rejected frame is reported once through on_error(kind, detail) and counted in
# `errors`, so the stats can tell "no bytes" (bytes_in flat) from "bad bytes" (checksum,
# format) from "good frames we cannot read" (encrypted, unsupported).

import dlms
import framing
import link
import normalize
from errors import ENCRYPTED, MALFORMED, SEGMENT, DecodeError

INCOMPLETE = "incomplete"  # the stream ended inside a split message
MEMORY = "memory"  # the heap had no room for this reading
INTERNAL = "internal"  # a decoder bug met this frame
NOISE = "noise"  # bytes outside any frame: wrong speed or parity, a loose wire, a pause


class Decoder:
    # Class defaults: a dongle whose meter does not encrypt holds no entry for them.
    keys = None  # (key, auth_key or None), 16 bytes each, for a meter that encrypts
    security = None  # security.Context of the keys
    last = -1  # the last invocation counter (security.unwrap)
    on_frame = None  # on_frame(kind, buf, n): the frame of each reading, before on_reading

    def __init__(self, on_reading, on_error=None, max_frame=2048, keys=None):
        self.on_reading = on_reading
        self.on_error = on_error
        self.assembler = framing.Assembler(self._frame, self._rejected, max_frame)
        self.link = link.Link(max_frame)
        if keys:
            # A meter that encrypts: its context made now, at boot, while the heap is
            # whole (gcm's tables, 2 KB in 8 arrays, and the code of gcm and security,
            # ~7 KB on the owner's .mpy path), not at the first push into a fragmented one.
            import security

            self.keys = self.link.keys = keys
            self.security = security.Context(keys[0], keys[1])
        self.blocks = None  # gbt.Blocks, made at the first block transfer
        self.errors = {}
        self.readings = 0
        self._noise_seen = 0
        self.notification = dlms.Notification()  # the last one, also for diagnostics
        self.normalizer = normalize.Normalizer()

    def feed(self, chunk, n=-1):
        """Decode the bytes of chunk (its first n when given); results go to the callbacks."""
        self.assembler.feed(chunk, n)

    def idle(self):
        """The line went quiet: a frame still being assembled is truncated."""
        self.assembler.idle()

    def end(self):
        """End of a recorded stream: also report a split message that never finished."""
        self.assembler.idle()
        self._noise()
        pending = self.link.pending() or (self.blocks and self.blocks.pending())
        # Reset whatever was pending, or skipped: a ciphered split message's parts are
        # skipped, not pending, and the next stream must start as a fresh one does.
        self.link.reset()
        if self.blocks:
            self.blocks.reset()
        if pending:
            self._error(INCOMPLETE, None)

    def apdu(self, buf, n):
        """Decode a bare DLMS APDU buf[0:n] (a decrypted payload, an LLC dump's tail)."""
        self._frame(framing.APDU, buf, n)

    def _p1(self, buf, n):
        """Reading of a checked P1 telegram buf[0:n]."""
        if buf[0] == 0xDB and not self.keys:  # a telegram in a ciphered APDU (Luxembourg)
            raise DecodeError(ENCRYPTED)
        import p1  # on first use: a HAN dongle never spends RAM on the P1 code

        # With the decoder: p1 opens a ciphered one with its keys (p1cipher.py). No name
        # of that here: the HAN dongle's names fill five qstr pools (test_heap.py).
        return p1.decode(buf, n, self.normalizer, self)

    def decode_apdu(self, data, start, end):
        """Reading of the APDU data[start:end], or None while a block transfer is open."""
        if start < end and data[start] == dlms.GENERAL_BLOCK_TRANSFER:
            if self.blocks is None:
                import gbt

                self.blocks = gbt.Blocks(self.assembler.max_frame)
                if self.keys:
                    self.blocks.keys = self.keys
            m = self.blocks.push(data, start, end)
            if not m:
                return None
            data, start, end = self.blocks.apdu, 0, m
        if self.keys and start < end and dlms.is_ciphered(data[start]):
            import security  # loaded by __init__: only a meter that encrypts pays for it

            if not isinstance(data, bytearray):  # apdu() of bytes: a copy to decrypt in
                data = bytearray(data[start:end])  # (host_tests/stress/fuzz: TypeError, `internal`)
                start, end = 0, len(data)
            start, end = security.unwrap(self, data, start, end)  # decrypted in place
        return self.normalizer.decode(self.notification.parse(data, start, end))

    # -- callbacks from the assembler -----------------------------------------------------

    def _frame(self, kind, buf, n):
        # Every frame comes here, so the frame's own steps are written in place, not
        # called: a call costs ~1,600 instructions on MicroPython and, for a function of
        # more than 11 slots, a heap block for its frame (objfun.c, VM_MAX_STATE_ON_STACK).
        if self.assembler.noise != self._noise_seen:
            self._noise()
        try:
            self.notification.data = None
            if kind == framing.P1:
                reading = self._p1(buf, n)
            elif kind == framing.APDU:
                reading = self.decode_apdu(buf, 0, n)
            else:  # HDLC, M-Bus: a split message's part gives no reading yet
                lk = self.link
                abandoned = lk.abandoned
                reading = lk.push(kind, buf, n)
                if lk.abandoned != abandoned:
                    self._error(SEGMENT, "abandoned")  # a new message began before it ended
                if reading:
                    reading = self.decode_apdu(lk.data, lk.start, lk.end)
                else:
                    reading = None
        except DecodeError as e:
            self._error(e.args[0], None)
            return
        except ValueError:  # text that is not UTF-8, a number that is not one
            self._error(MALFORMED, None)
            return
        except MemoryError:  # a heap too full or fragmented for this reading
            self._error(MEMORY, None)
            return
        except Exception as e:  # noqa: BLE001 - a decoder bug must not stop the meter link
            # Counted and reported as its own kind, so it shows in the stats; the next
            # frame is decoded as usual.
            self._error(INTERNAL, repr(e))
            return
        if reading is not None:
            self.readings += 1
            # The local API keeps a P1 telegram as it came; not yet one that came ciphered
            # (its telegram lies inside the frame, after the header).
            if self.on_frame is not None and buf[0] != 0xDB:
                self.on_frame(kind, buf, n)
            self.on_reading(reading)

    def _rejected(self, kind):
        self._noise()
        if self.on_error:
            self.on_error(kind, None)

    def _noise(self):
        # Reported as one error per run of noise, before the frame that ends it.
        noise = self.assembler.noise
        n = (noise - self._noise_seen) & 0x1FFFFFFF  # the counter wraps below 2**29 (framing)
        if n:
            self._noise_seen = noise
            self._error(NOISE, "%d bytes" % n)

    def _error(self, kind, text):
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if self.on_error:
            self.on_error(kind, text)
