# What the board runs at boot: MicroPython executes main.py from the filesystem root, as
# source, so it stays this small; the rest is compiled (or frozen). `hanctl install`
# copies this file as it is and the other modules as .mpy.
import startup

startup.main()
