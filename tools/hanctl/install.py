"""`hanctl install --board B --port P [--config FILE]`: put hanport on a dongle.

What goes where on the dongle's file system:
- every firmware module as bytecode (build/mpy-O3, runtime.compile_firmware()) at the
  root. Not in /lib: an ESP32's sys.path is ['', '.frozen', '/lib'], and only the root
  comes before frozen modules, so a board flashed with hanport frozen in (boards/*/
  manifest.py) still runs the modules installed here;
- firmware/main.py as main.py, as source: MicroPython runs the boot file from there. No
  module is named main, so it shadows nothing;
- boards/B/board.json as board.json;
- the owner's page, page.html.gz (page_assets.py: built from page/ with npm), which
  firmware/page.py streams from flash as it is;
- with --config: config.json (checked by the firmware's validator first) and the TLS CA
  files it names.
The hardware layer matches the device: hal_esp32 on a board, hal_unix on the virtual dongle
(sys.platform "linux"); the other one stays on the host.

A file whose SHA-256 on the device equals the local one is not copied again. The firmware
files and board.json written are listed in /hanport.files; a later install removes the
modules of that list that hanport no longer has. Nothing else on the dongle (config.json,
the dongle's state, the owner's own files) is ever removed.
"""

import hashlib
import subprocess
import time

from . import boards, device, page_assets, runtime

MANIFEST = "/hanport.files"
CHECKED = "/config.checked"  # the firmware's checked copy of config.json
BOOT_FILE = "/main.py"
BOARD_FILE = "/board.json"
HALS = {"linux": "hal_unix"}  # sys.platform -> hardware layer; any other is a board's
BOARD_HAL = "hal_esp32"


class InstallError(Exception):
    """What stops an install, said for the owner."""


def register(subparsers):
    parser = subparsers.add_parser(
        "install",
        help="copy hanport (compiled), board.json and a config.json to a dongle",
        description="Compile the firmware and copy it to a dongle that runs MicroPython; "
        "files already there unchanged are not copied again.",
    )
    parser.add_argument("--board", required=True, help="a folder name under boards/")
    parser.add_argument("--port", required=True, help="serial port or virtual dongle path")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config.json to install as well, checked for a board (Wi-Fi networks, and the "
        "board name of --board), as `hanctl config validate` checks",
    )
    parser.add_argument(
        "--frozen",
        action="store_true",
        help="the board runs an image with hanport frozen in (boards/B/manifest.py): "
        "copy no modules, and remove those an earlier install copied",
    )
    parser.set_defaults(
        run=lambda args: install(args.board, args.port, args.config, frozen=args.frozen)
    )


def install(board, port, config=None, out=print, frozen=False):
    """Install hanport for board on the dongle at port; the exit status (0: done).

    frozen: the modules are in the board's image; a copy on the file system would come
    first on sys.path and load into the heap, which is what freezing avoids."""
    started = time.monotonic()
    try:
        boards.load_board(board)  # BoardError names the known boards
        settings = _config_files(config, board, out) if config else {}
        with device.connect(port) as dev:
            # gcm_native as the device's machine code (xtensawin on an ESP32): gcm runs its
            # bytecode where it is missing or of another architecture
            modules = {} if frozen else _compiled_modules(dev.mpy_arch())
            _check_bytecode(dev, modules)
            code = device_code(dev.platform(), board, {} if frozen else modules)
            copied, unchanged = _install(dev, code, settings, out)
    except (InstallError, boards.BoardError, device.DeviceError) as err:
        out(f"hanctl install: {err}")
        return 1
    except OSError as err:  # a local file unreadable, the link broken mid-copy
        out(f"hanctl install: {err}")
        return 1
    seconds = time.monotonic() - started
    out(f"installed on {port}: {copied} copied, {unchanged} unchanged ({seconds:.1f} s)")
    if copied:
        out("restart the dongle (its reset button) to run it")
    return 0


def _config_files(config, board, out):
    """{device path: bytes} of config.json and its CA files; InstallError when invalid."""
    problems = boards.check_config(config, board)  # the validator, and board == --board
    if problems:
        for problem in problems:
            out(problem)  # the validator never quotes a secret
        raise InstallError(f"{config} is not valid; nothing was installed")
    raw, cfg, _ = device.check_config(config)
    files, missing = device.config_files(config, cfg)
    for ca in missing:
        out(f"warning: {ca} (named by tls.ca) is not next to {config}; not installed")
    return {path: raw if path == device.CONFIG else local.read_bytes() for local, path in files}


def _compiled_modules(march):
    """{module name: .mpy bytes} of every firmware module, compiled as the dongle loads it,
    runtime.NATIVE_MODULES for march ("": left out)."""
    try:
        build = runtime.compile_firmware(march=march)
    except runtime.MissingInterpreter as err:
        raise InstallError(str(err)) from None
    except subprocess.CalledProcessError:  # mpy-cross printed the file and line
        raise InstallError(f"mpy-cross could not compile {runtime.firmware_dir()}") from None
    modules = {p.stem: p.read_bytes() for p in sorted(build.glob("*.mpy"))}
    if not modules:
        raise InstallError(f"{runtime.firmware_dir()}: no firmware modules to install")
    return modules


def device_code(platform, board, modules):
    """{device path: bytes} of hanport's code for a device whose sys.platform is platform:
    the modules (with that device's hardware layer only), board.json, then main.py.

    main.py comes last: an install cut short leaves no boot file importing what is not
    there yet, and the board starts to its REPL instead of into a crash at every boot."""
    hal = HALS.get(platform, BOARD_HAL)
    skip = ({BOARD_HAL, *HALS.values()} - {hal}) | {"main"}
    code = {f"/{name}.mpy": data for name, data in modules.items() if name not in skip}
    code[BOARD_FILE] = (boards.boards_dir() / board / "board.json").read_bytes()
    try:
        code["/" + page_assets.ASSET] = page_assets.build().read_bytes()
    except page_assets.PageBuildError as err:  # the rest works without the page
        print(f"warning: {err}; the owner's page will answer 404")
    code[BOOT_FILE] = (runtime.firmware_dir() / "main.py").read_bytes()
    return code


def _install(dev, code, settings, out):
    """Copy what differs, drop modules hanport no longer has; (copied, unchanged)."""
    wanted = {**code, **settings}
    wanted[BOOT_FILE] = wanted.pop(BOOT_FILE)  # still last
    on_device = dev.sha256_many([MANIFEST, CHECKED, *wanted])
    copied = unchanged = 0
    new_code = False
    for path, data in wanted.items():
        name = path.lstrip("/")
        if on_device[path] == hashlib.sha256(data).hexdigest():
            out(f"unchanged {name} ({len(data)} bytes)")
            unchanged += 1
        else:
            dev.write_file(path, data)
            out(f"copied    {name} ({len(data)} bytes)")
            copied += 1
            new_code = new_code or path in code
    if new_code and on_device[CHECKED]:
        # The firmware keeps the config it last checked (firmware/startup.py); new code
        # checks it again, even where its version number did not change (a dev build).
        dev.remove(CHECKED)
        out("removed   config.checked (the new firmware checks config.json again)")
    previous = _read_manifest(dev) if on_device[MANIFEST] else []
    for path in previous:
        # Only modules hanport wrote and no longer has; never config, state or owner files.
        if path.endswith(".mpy") and path not in code:
            dev.remove(path)
            out(f"removed   {path.lstrip('/')} (no longer part of hanport)")
    manifest = "".join(path + "\n" for path in sorted(code)).encode()
    if on_device[MANIFEST] != hashlib.sha256(manifest).hexdigest():
        dev.write_file(MANIFEST, manifest)
    _warn_shadowing(dev, code, out)
    return copied, unchanged


def _check_bytecode(dev, modules):
    # An .mpy of another format version fails at import on the board ("incompatible .mpy
    # file"), after the copy: say it now. Byte 1 of an .mpy is its version
    # (py/persistentcode.c), and the device's sys.implementation._mpy carries its own.
    if not modules:  # frozen: the image's own MicroPython built them
        return
    ours = next(iter(modules.values()))[1]
    theirs = dev.mpy_version()
    if theirs and theirs != ours:
        raise InstallError(
            f"the dongle's MicroPython loads .mpy version {theirs}, hanport's build is "
            f"version {ours}; write a current MicroPython on it (hanctl flash)"
        )


def _read_manifest(dev):
    text = dev.read_file(MANIFEST).decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("/")]


def _warn_shadowing(dev, code, out):
    # MicroPython imports x.py before x.mpy from the same folder: an old source copy at the
    # root would run instead of what was installed. It is the owner's file: only say so.
    sources = {path[1:-4] + ".py" for path in code if path.endswith(".mpy")}
    for name in sorted(sources & set(dev.listdir("/"))):
        out(f"warning: /{name} is imported instead of the installed {name[:-3]}.mpy; remove it")
