# The unix port's picture of an official MicroPython image for an ESP32: what that image
# freezes and hanport uses, nothing of hanport. ports/esp32/boards/manifest.py (1.23 to
# 1.25) freezes asyncio, so it costs a board no heap; the firmware itself is loaded from the
# .mpy files `hanctl install` puts on the board's filesystem, into the heap, as here.
# (ntptime, also frozen on a board, is imported only by hal_esp32's boards.) The names of
# the rest of what that manifest freezes (umqtt, requests, mip, ...) the build gives the
# image as static names (esp32_frozen_qstrs.h): a .mpy file's name among them costs a
# board no heap, nor the model.
include("$(MPY_DIR)/extmod/asyncio")  # noqa: F821 - given by makemanifest
