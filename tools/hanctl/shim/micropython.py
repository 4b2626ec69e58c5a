"""CPython stand-in for MicroPython's `micropython` module.

hanctl puts this directory on CPython's sys.path so firmware modules that do
`from micropython import const` or use `@micropython.native` import unchanged on the host.
Every function keeps the meaning the firmware relies on and drops the device effect.
"""


def const(value):
    # MicroPython folds const() at compile time; the value is all the host needs.
    return value


def native(func):
    return func


def viper(func):
    return func


def heap_lock():
    # Allocation proofs belong in the MicroPython unix-port tests, not on CPython.
    pass


def heap_unlock():
    # The real one returns the lock depth left after unlocking.
    return 0


def mem_info(*args):
    pass


def alloc_emergency_exception_buf(size):
    pass
