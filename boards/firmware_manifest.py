# The firmware part of every board's frozen image (boards/<name>/manifest.py includes it):
# each firmware module, compiled as hanctl installs it, run from flash instead of being
# loaded into the heap from the file system.
import glob
import os

# main.py stays on the file system: MicroPython runs the boot file from there, as source.
# hal_unix.py is the unix port's hardware layer.
NOT_FROZEN = ("main.py", "hal_unix.py")

# Relative paths in a manifest are resolved from the manifest's own folder.
for path in sorted(glob.glob("../firmware/*.py")):
    name = os.path.basename(path)
    if name not in NOT_FROZEN:
        # opt=3 as runtime.DEFAULT_OPT ships the .mpy files: no line numbers in tracebacks.
        module(name, base_path="../firmware", opt=3)  # noqa: F821 - given by makemanifest
