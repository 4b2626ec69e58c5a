# The unix port's image with hanport frozen in, as an ESP32 board's image has it
# (boards/<name>/manifest.py): the firmware's bytecode and names then sit in the image,
# not in the heap, and `-X heapsize=96K` measures what the dongle's RAM really holds.
include("$(MPY_DIR)/extmod/asyncio")  # noqa: F821 - given by makemanifest
include("../../boards/firmware_manifest.py")  # noqa: F821
# On this port the unix hardware layer stands where hal_esp32 stands on a board.
module("hal_unix.py", base_path="../../firmware", opt=3)  # noqa: F821
