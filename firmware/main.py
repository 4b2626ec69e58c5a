# What the board runs at boot: MicroPython executes main.py from the filesystem root, as
# source, so it stays this small; the dongle itself is the compiled (or frozen) module
# `dongle`. `hanctl install` copies this file as it is and the other modules as .mpy.
import dongle

dongle.main()
