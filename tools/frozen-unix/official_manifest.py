# The unix port's picture of an official MicroPython image for an ESP32: what that image
# freezes and hanport uses, nothing of hanport. ports/esp32/boards/manifest.py (1.23 to
# 1.25) freezes asyncio, so it costs a board no heap; the firmware itself is loaded from the
# .mpy files `hanctl install` puts on the board's filesystem, into the heap, as here.
# (ntptime, also frozen on a board, is imported only by hal_esp32's boards.)
include("$(MPY_DIR)/extmod/asyncio")  # noqa: F821 - given by makemanifest
