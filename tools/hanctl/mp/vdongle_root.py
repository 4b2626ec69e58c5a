# Boot script of the virtual dongle (hanctl virtual-dongle), run by the MicroPython unix port
# as `micropython -i vdongle_root.py DIR`: DIR becomes the device's whole filesystem, then
# the port's own REPL (with raw REPL and raw-paste, as on a board) takes over the pty.
#
# vfs.VfsPosix(DIR) is not used: it joins DIR and the path as given, so "/.." reaches
# DIR's parent on the host, and its rename() fails with ENOENT (1.29: both paths are built
# in one buffer, the second overwrites the first). Root normalises every path itself, so
# "/" is DIR and nothing above it can be named, and hands host paths to a VfsPosix on the
# host's root. It is a guard against mistakes (a firmware bug, a wrong mpremote path), not
# a sandbox: os.system and ffi still reach the host.


class Root:
    """A VFS that is the host folder `folder` seen from inside: the VFS layer hands it paths
    below its mount point "/" and relative paths from its own cwd."""

    def __init__(self, posix, folder):
        self.posix = posix  # VfsPosix() on the host's root, not mounted
        self.folder = folder.rstrip("/")
        self.cwd = "/"

    def _path(self, path):
        """The host path of path (relative to cwd, or absolute): '.', '..' and '//'
        resolved, '..' at the top staying at the top, as on a board's littlefs root."""
        if not path.startswith("/"):
            path = self.cwd + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return self.folder + "/" + "/".join(parts)

    def mount(self, readonly, mkfs):
        self.posix.mount(readonly, mkfs)

    def umount(self):
        self.posix.umount()

    def open(self, path, mode):
        return self.posix.open(self._path(path), mode)

    def chdir(self, path):
        host = self._path(path)
        if not self.posix.stat(host)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self.cwd = host[len(self.folder) :] or "/"

    def getcwd(self):
        return self.cwd

    def ilistdir(self, path):
        # With sizes, as littlefs gives them (VfsPosix gives 3-tuples): `mpremote fs ls`
        # shows them.
        path = self._path(path)
        for entry in self.posix.ilistdir(path):
            kind = entry[1]
            size = 0 if kind == 0x4000 else self.posix.stat(path + "/" + entry[0])[6]
            yield (entry[0], kind, 0, size)

    def stat(self, path):
        return self.posix.stat(self._path(path))

    def statvfs(self, path):
        return self.posix.statvfs(self._path(path))

    def mkdir(self, path):
        self.posix.mkdir(self._path(path))

    def rmdir(self, path):
        self.posix.rmdir(self._path(path))

    def remove(self, path):
        self.posix.remove(self._path(path))

    def rename(self, old, new):
        self.posix.rename(self._path(old), self._path(new))


def _boot():
    import os
    import sys

    import vfs

    vfs.umount("/")
    vfs.mount(Root(vfs.VfsPosix(), sys.argv[1]), "/")
    os.chdir("/")
    # An ESP32's module path (ports/esp32/main.c): the root, frozen modules, then /lib.
    # Running this file put its host folder first, which must not leak into the device.
    sys.path[:] = ["", ".frozen", "/lib"]
    sys.argv[:] = []
    # The REPL starts with these globals: leave them as empty as a board's. Root uses no
    # global name, so the mounted instance works whatever the owner rebinds.
    names = globals()
    for name in list(names):
        if not name.startswith("__"):
            del names[name]


_boot()
