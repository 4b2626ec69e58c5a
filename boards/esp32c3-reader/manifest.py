# MicroPython image for the esp32c3-reader board with hanport frozen in: frozen modules run
# from flash instead of being loaded into RAM from the file system.
#
# Build it in a MicroPython checkout with ESP-IDF installed (not possible on hanport's own
# dev machines, which have no ESP-IDF), then flash build-ESP32_GENERIC_C3/firmware.bin with
# `hanctl flash --firmware`:
#     cd micropython/ports/esp32
#     make BOARD=ESP32_GENERIC_C3 \
#         FROZEN_MANIFEST=/path/to/hanport/boards/esp32c3-reader/manifest.py
#
# Modules on the file system come before frozen ones in sys.path, so a board flashed with
# this image needs only main.py, board.json and config.json on its file system:
# `hanctl install --frozen` copies just those.

# The port's own frozen modules (asyncio, ntptime, ...), as the generic image has them.
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821 - given by MicroPython's makemanifest
include("../firmware_manifest.py")  # noqa: F821
