"""Every single-bit flip of every real frame: rejected, or the very same reading.

A flipped bit on the HAN line must never become a wrong number at a destination. Each
checksum that guards a frame (HDLC's HCS and FCS, CRC-16/X.25; P1's CRC-16/ARC; M-Bus's
8-bit sum) catches every single-bit error in the bytes it covers, so a flip there is
rejected. Outside them (an HDLC flag, a P1 CRC digit whose case flips, the line end after
a P1 CRC) the frame either still decodes, to the same values, or is rejected.

Left out, with the reason: APDUs without a frame (the amshan unit-test PDUs: `llc`,
`apdu`) carry no checksum, and P1 telegrams without a CRC (DSMR 2.2/3.0, marked
`unchecked` in the reading) have none either; a flip there changes a value undetectably,
on any reader.

CPython runs the firmware modules (the same code as the dongle's .mpy); the 56 KB of
captures make about 420,000 decodes, ~40 s here (`-k bitflip` to run them alone).
"""

import pytest

import vectors
from decoder import Decoder
from reading import to_json

MISSING = vectors.missing_reason()
CASES = vectors.load_cases() if MISSING is None else []
FRAMED = [c for c in CASES if c.framing in ("hdlc", "p1", "mbus")]


def decode(chunks):
    readings, errors = [], []
    d = Decoder(lambda r: readings.append(to_json(r)), lambda kind, _: errors.append(kind))
    for c in chunks:
        d.feed(c)
    d.end()
    return readings, errors


def flips(chunks):
    """(description, chunks) for every single-bit flip over the chunks' bytes."""
    for i, chunk in enumerate(chunks):
        buf = bytearray(chunk)
        for pos in range(len(buf)):
            for bit in range(8):
                buf[pos] ^= 1 << bit
                yield f"chunk {i} byte {pos} bit {bit}", [*chunks[:i], bytes(buf), *chunks[i + 1 :]]
                buf[pos] ^= 1 << bit


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
@pytest.mark.parametrize("case", FRAMED, ids=[c.id for c in FRAMED])
def test_bitflip_is_rejected_or_harmless(case):
    original, _ = decode(case.chunks)
    if any('"unchecked": true' in r for r in original):
        pytest.skip("a P1 telegram without a CRC: nothing can detect a flipped bit in it")
    wrong = []
    for where, chunks in flips(case.chunks):
        readings, errors = decode(chunks)
        foreign = [r for r in readings if r not in original]
        silent_loss = readings != original and not errors
        if foreign or silent_loss:
            wrong.append((where, foreign[:1], errors))
    if not original and wrong and len(wrong) == 1 and not wrong[0][2]:
        # A capture marked corrupt that one flipped bit damaged (two here, a Kamstrup HDLC
        # and a Kamstrup P1 telegram): flipping that bit back is the one flip that makes
        # it whole again, and its checksums then hold. Any second such flip would fail.
        return
    assert not wrong, f"{len(wrong)} flips got through, first: {wrong[0]}"


def test_the_flips_cover_every_framed_capture():
    if MISSING:
        pytest.skip(MISSING)
    assert len(FRAMED) == len(CASES) - sum(c.framing in ("llc", "apdu") for c in CASES)
    assert len(FRAMED) >= 170  # 145 HDLC, 26 P1, 6 M-Bus in the shared vectors of 2026-11
