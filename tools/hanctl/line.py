"""A serial line between a meter and a UART receiver, bit by bit: what the receiver reads
when its setting (baud, 8E1/8N1, inverted) is not the meter's.

receive(data, sender, receiver) serialises the bytes the meter sends at its own setting
and samples them as the receiver's UART would at its setting. A setting is
(baud, "8E1" or "8N1", inverted). The line is assumed idle before and after `data` (the
meter pauses between frames), so each frame can be emulated on its own.

The receiver modelled is the ESP32's UART as the ESP-IDF driver runs it (what MicroPython's
machine.UART uses):
- A start bit is a falling edge (idle high to low). The start bit is checked again half a
  bit later (still low, or it was a glitch and the hunt goes on); each following bit is
  sampled at its middle. (Real UARTs sample 16 times per bit and take the middle ones:
  the same result on a clean line.)
- Bytes with a parity or framing error are kept: the ESP32's UART_CONF0 bit ERR_WR_MASK
  ("1: the receiver stops storing data into FIFO when data is wrong; 0: stores the data
  even if the received data is wrong", ESP32 TRM) is 0 at reset and neither ESP-IDF nor
  MicroPython sets it. `errors` counts them, as the driver's events would.
- After a stop bit read low (a framing error, or a break), the next start bit needs the
  line to go high and fall again: an edge-triggered start detector. (Assumed; the TRM does
  not say. A 16550 instead takes the low stop bit as the next start bit.)

What follows from it, as on real hardware: 8E1 read as 8N1 gives the right bytes (the
parity bit is read as the stop bit, a framing error when it is 0, and the real stop bit
is idle); 8N1 read as 8E1 gives garbage on back-to-back bytes (the next start bit is read
as the stop bit); a wrong speed gives garbage or, much slower, little at all; an inverted
line idles low, so the receiver sees each byte's inverted stop bit and idle level as
starts: garbage.
"""

from bisect import bisect_left

DATA_BITS = 8


def parse(text):
    """ "2400 8E1", "115200 8N1 inverted" -> (2400, "8E1", False) (meterlink's names)."""
    parts = text.split()
    if len(parts) not in (2, 3) or parts[1] not in ("8E1", "8N1"):
        raise ValueError(f"not a line setting: {text!r}")
    if len(parts) == 3 and parts[2] != "inverted":
        raise ValueError(f"not a line setting: {text!r}")
    return int(parts[0]), parts[1], len(parts) == 3


def name(setting):
    baud, fmt, inverted = setting
    return f"{baud} {fmt}" + (" inverted" if inverted else "")


def levels(data, fmt):
    """The line's logic levels, one per bit at the sender's baud, idle (1) first: start 0,
    eight data bits least significant first, even parity for 8E1, stop 1."""
    out = bytearray([1])
    parity = fmt == "8E1"
    for b in data:
        out.append(0)
        ones = 0
        for i in range(DATA_BITS):
            bit = (b >> i) & 1
            ones += bit
            out.append(bit)
        if parity:
            out.append(ones & 1)
        out.append(1)
    return out


def receive(data, sender, receiver, errors=None):
    """The bytes a UART at `receiver` reads when a meter at `sender` sends `data`.

    errors, a dict, gets "framing" and "parity" counts added (bytes kept all the same)."""
    s_baud, s_fmt, s_inv = sender
    r_baud, r_fmt, r_inv = receiver
    if s_inv == r_inv and s_baud == r_baud and (s_fmt == r_fmt or s_fmt == "8E1"):
        # The receiver reads every byte right. 8E1 read as 8N1: a framing error for each
        # byte whose parity bit is 0, the byte kept.
        if errors is not None and s_fmt != r_fmt:
            bad = sum(1 for b in data if not bin(b).count("1") & 1)
            errors["framing"] = errors.get("framing", 0) + bad
        return bytes(data)
    return sample(data, sender, receiver, errors)


def sample(data, sender, receiver, errors=None):
    """receive() bit by bit, whatever the settings (receive() skips it where the answer is
    known: the tests check that both agree)."""
    s_baud, s_fmt, s_inv = sender
    r_baud, r_fmt, r_inv = receiver
    level = levels(data, s_fmt)
    if s_inv != r_inv:  # the receiver sees every level flipped, idle included
        level = bytearray(1 - x for x in level)
    idle = level[0]
    n = len(level)
    falls = [k for k in range(1, n) if level[k - 1] == 1 and level[k] == 0]
    rises = [k for k in range(1, n) if level[k - 1] == 0 and level[k] == 1]
    # Time in units of 1 / (2 * s_baud * r_baud) s: a sender bit is 2 * r_baud units, a
    # receiver bit 2 * s_baud, so every edge and mid-bit sample falls on a whole unit.
    s_bit, r_bit = 2 * r_baud, 2 * s_baud

    def at(t):  # the level at time t; the idle level after the data
        k = t // s_bit
        return level[k] if k < n else idle

    out = bytearray()
    t = 0  # the receiver hunts for a start bit from here
    need_high = idle == 0  # an inverted line starts low: a break, no start bit yet
    while True:
        if need_high:  # after a low stop bit: wait for the line to go high first
            i = bisect_left(rises, -(-t // s_bit))
            if i == len(rises):
                break
            t = rises[i] * s_bit
            need_high = False
        i = bisect_left(falls, -(-t // s_bit))
        if i == len(falls):
            break
        edge = falls[i] * s_bit
        mid = edge + r_bit // 2
        if at(mid) != 0:  # a glitch, not a start bit
            t = mid
            continue
        value = ones = 0
        for j in range(DATA_BITS):
            bit = at(mid + (1 + j) * r_bit)
            value |= bit << j
            ones += bit
        k = 1 + DATA_BITS
        if r_fmt == "8E1":
            if at(mid + k * r_bit) != ones & 1 and errors is not None:
                errors["parity"] = errors.get("parity", 0) + 1
            k += 1
        stop = mid + k * r_bit
        if at(stop) == 0:
            need_high = True
            if errors is not None:
                errors["framing"] = errors.get("framing", 0) + 1
        out.append(value)
        t = stop
    return bytes(out)
