# Pushes that describe themselves (L&G E450, Switzerland): the body's first element is the
# push object list, structure{class id, logical name, attribute index, data index} for
# every value that follows, itself included (IEC 62056-6-2, push setup attribute 2).
#
# Such a push carries no scalers, and none are declared for these meters yet, so numeric
# values are kept raw under their OBIS code; texts (the meter id) get their field names.
# Imported by normalize.py on first use, so dongles on other meters never load it.

from micropython import const

import obis
from errors import NESTING, DecodeError

_ARRAY = const(0x01)
_STRUCTURE = const(0x02)
_OCTET_STRING = const(0x09)
_OBIS_LEN = const(6)
_MAX_DEPTH = const(8)  # as axdr.py


def walk(norm, r):
    """Store the values of the object-list push at reader r through normalizer norm."""
    r.byte()  # structure
    count = r.length()
    r.byte()  # array
    labels = []
    for _ in range(r.length()):
        r.byte()
        fields = r.length()
        _skip(r)  # class id
        if is_obis(r):
            labels.append(r.take(2 + _OBIS_LEN) + 2)
        else:  # a logical name hanport does not read (F not 255...): step over it
            _skip(r)
            labels.append(-1)
        for _ in range(fields - 2):
            _skip(r)
    for i in range(1, count):
        tag = r.byte()
        if tag == _ARRAY or tag == _STRUCTURE:
            r.pos -= 1
            _skip(r)
            continue
        v = r.scalar(tag)
        if i < len(labels) and labels[i] >= 0 and v is not None:
            _put(norm, labels[i], v)


def _put(norm, p, v):
    """Store value v of the register whose OBIS code is at p: a number kept as sent,
    under its code (no scaler in the push and none declared), anything else by name."""
    if isinstance(v, int) and not isinstance(v, bool):
        if len(norm.reading) >= obis.FIELDS_MAX:  # before the dict grows, not after
            norm.dropped += 1
            return
        buf = norm.data
        norm.reading[obis.code(buf[p], buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4])] = v
        return
    norm.store(None, p, v, None)


def is_obis(r):
    """Is the next element an OBIS code: octet-string of 6, A 0 or 1, F 255?"""
    p = r.pos
    buf = r.buf
    return (
        p + 7 < r.end
        and buf[p] == _OCTET_STRING
        and buf[p + 1] == _OBIS_LEN
        and buf[p + 2] <= 1
        and buf[p + 7] == 0xFF
    )


def _skip(r, depth=0):
    """Step over one whole data element at reader r."""
    if depth > _MAX_DEPTH:
        raise DecodeError(NESTING)
    tag = r.byte()
    if tag == _ARRAY or tag == _STRUCTURE:
        for _ in range(r.length()):
            _skip(r, depth + 1)
    else:
        r.scalar(tag)  # read to step over it: as rare as these pushes
