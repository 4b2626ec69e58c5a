# The few ways a frame can fail after its link-layer check passed.
#
# Each kind is counted by the decoder and published as a diagnostic, so an owner can tell
# "meter sends encrypted data, give me the key" from "frames are damaged" from "my meter
# speaks a list hanport does not know". Link-layer rejections (checksum, length, oversize,
# truncated, format) are counted by the frame assembler without exceptions.


class DecodeError(Exception):
    """A frame that passed its link check but cannot be read; args[0] is the kind.

    One class with the kind as its argument, not a class per kind: each exception class
    costs ~380 bytes of heap on the unix port (measured), and the kinds are only counted.
    """


MALFORMED = "malformed"  # the A-XDR or APDU structure is not what the standard allows
TRUNCATED = "truncated"  # the data runs past the end of the frame
UNSUPPORTED = "unsupported"  # a valid APDU or type hanport does not decode
ENCRYPTED = "encrypted"  # DLMS ciphered APDU and no key configured
DECRYPT = "decrypt"  # a key is configured, but the tag does not hold: wrong key or auth key?
SEGMENT = "segment"  # a continuation segment or block with no start, or out of order
NESTING = "nesting"  # arrays/structures nested deeper than the decoder allows
OVERSIZE = "oversize"  # a split message longer than the reassembly buffer


def append(buf, k, data, start, end):
    """Copy data[start:end] into buf at k, byte by byte (a slice would allocate); the new
    fill. Raises DecodeError(OVERSIZE) when it does not fit: the caller drops the message."""
    m = end - start
    if m < 0:
        raise DecodeError(MALFORMED)
    if k + m > len(buf):
        raise DecodeError(OVERSIZE)
    for j in range(m):
        buf[k + j] = data[start + j]
    return k + m
