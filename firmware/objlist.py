# Pushes that describe themselves (L&G E450, Switzerland): the body's first element is the
# push object list, structure{class id, logical name, attribute index, data index} for
# every value that follows, itself included (IEC 62056-6-2, push setup attribute 2).
#
# Such a push carries no scalers, and none are declared for these meters yet, so numeric
# values are kept raw under their OBIS code; texts (the meter id) get their field names.
# Imported by normalize.py on first use, so dongles on other meters never load it.

from micropython import const

from normalize import is_obis

_ARRAY = const(0x01)
_STRUCTURE = const(0x02)
_OBIS_LEN = const(6)


def walk(norm, r):
    """Store the values of the object-list push at reader r through normalizer norm."""
    r.byte()  # structure
    count = r.length()
    r.byte()  # array
    labels = []
    for _ in range(r.length()):
        r.byte()
        fields = r.length()
        r.skip()  # class id
        if is_obis(r):
            labels.append(r.take(2 + _OBIS_LEN) + 2)
        else:  # a logical name hanport does not read (F not 255...): step over it
            r.skip()
            labels.append(-1)
        for _ in range(fields - 2):
            r.skip()
    for i in range(1, count):
        tag = r.byte()
        if tag == _ARRAY or tag == _STRUCTURE:
            r.pos -= 1
            r.skip()
            continue
        v = r.scalar(tag)
        if i < len(labels) and labels[i] >= 0 and v is not None:
            norm.put(labels[i], v, None, raw=True)
