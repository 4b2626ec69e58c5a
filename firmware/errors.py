# The few ways a frame can fail after its link-layer check passed.
#
# Each kind is counted by the decoder and published as a diagnostic, so an owner can tell
# "meter sends encrypted data, give me the key" from "frames are damaged" from "my meter
# speaks a list hanport does not know". Link-layer rejections (checksum, length, oversize,
# truncated, format) are counted by the frame assembler without exceptions.


class DecodeError(Exception):
    kind = "malformed"  # the A-XDR or APDU structure is not what the standard allows


class Truncated(DecodeError):
    kind = "truncated"  # the data runs past the end of the frame


class Unsupported(DecodeError):
    kind = "unsupported"  # a valid APDU or type hanport does not decode


class Encrypted(DecodeError):
    kind = "encrypted"  # DLMS ciphered APDU and no key configured


class Segment(DecodeError):
    kind = "segment"  # a continuation segment or block with no start, or out of order


class TooDeep(DecodeError):
    kind = "nesting"  # arrays/structures nested deeper than the decoder allows


class Oversize(DecodeError):
    kind = "oversize"  # a split message longer than the reassembly buffer


def append(dst, k, src, start, end):
    """Copy src[start:end] into dst at k, byte by byte (a slice would allocate); the new
    fill. Raises Oversize when it does not fit: the caller drops the message."""
    m = end - start
    if k + m > len(dst):
        raise Oversize()
    for j in range(m):
        dst[k + j] = src[start + j]
    return k + m
