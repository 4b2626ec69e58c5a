"""`hanctl run`: the firmware's real main on the MicroPython unix port.

The socket UART connects to --uart tcp://HOST:PORT, where a meter (hanctl simulate, a
test, any program) serves the HAN byte stream. The dongle's filesystem is --state DIR
(default: a fresh temporary folder): config.json is copied there, with the files it names
(a TLS CA), and the dongle keeps its outage queue and learnt line setting there, so a
second run on the same DIR is a reboot.

--http HOST:PORT is where the dongle's web server listens, as port 80 on a board: it serves
only what config.json turns on ("local_api", "page"), or setup mode's page when there
is no valid config.json (firmware/portal.py; its DNS on the UDP port HANPORT_DNS names),
and without that nothing listens at all. The owner's page (page.html.gz, page_assets.py)
is put in DIR as install puts it on a board's flash.
"""

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from . import runtime

MAIN = "import main"  # the boot file, as the board runs it
# The unix HAL's restart() exits with this status: the board resets, and runs again on the
# same filesystem (after a new config.json has been checked, for one).
RESTART = 3
# What ends `hanctl run`: a service manager's stop, a closed terminal, Ctrl-C. Each is raised
# as Stopped, so that subprocess.run() ends the firmware before hanctl run exits (the default
# action of SIGTERM and SIGHUP left it running, and publishing); the exit status is the
# shell's 128 + the signal's number.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(BaseException):  # as KeyboardInterrupt: no `except Exception` swallows it
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    raise Stopped(signum)


def register(subparsers):
    parser = subparsers.add_parser(
        "run", help="run the firmware under the MicroPython unix port against a TCP meter"
    )
    parser.add_argument(
        "--config",
        required=True,
        help="config.json for the dongle; the firmware checks it for the unix port (no Wi-Fi "
        "networks or board needed), as `hanctl config validate --target unix` does",
    )
    parser.add_argument("--uart", required=True, help="tcp://HOST:PORT serving the HAN stream")
    parser.add_argument(
        "--heap",
        help="MicroPython heap size (default: 96K, an ESP32's, on a 32-bit image; twice that "
        "on the stock 64-bit interpreter, whose objects are twice the size)",
    )
    parser.add_argument("--state", help="the dongle's filesystem (kept between runs)")
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="where the dongle's web server listens (on a board: port 80 of every interface); "
        'it serves only what config.json turns on ("local_api", "page"), or setup mode\'s '
        "page when config.json is missing or invalid, and nothing listens without them",
    )
    parser.set_defaults(run=run_command)


def prepare(state_dir, config_path):
    """Put config.json (as given, even if broken) and the files it names into state_dir.

    The CA files are copied only for a config the firmware's validator passes, which
    refuses a CA path with ".." or an absolute one: "../x.pem" was copied out of state_dir
    before. A broken config is copied alone; the firmware says what is wrong
    (a file of any size or depth: json.loads of one nested 100,000 deep was a traceback).
    Raises OSError when config_path is there but cannot be read."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    src = Path(config_path)
    if not src.exists():
        (state / "config.json").unlink(missing_ok=True)
        _page_asset(state)  # setup mode's form (firmware/portal.py)
        return
    raw = src.read_bytes()
    (state / "config.json").write_bytes(raw)
    runtime.use_firmware_in_cpython()
    import config  # firmware/config.py, as `hanctl config validate --target unix` runs it

    cfg, problems = config.parse(raw, src.name, unix=True)
    if b'"page"' in raw or cfg is None or problems:
        _page_asset(state)  # the page's file, where the config or setup mode serves it
    for dest in [] if cfg is None or problems else cfg["destinations"]:
        ca = (dest["tls"] or {}).get("ca")
        if ca and (src.parent / ca).is_file():
            shutil.copyfile(src.parent / ca, state / ca)


def _page_asset(state):
    """Copy the owner's page into state; a build that fails is said, and the rest of hanctl
    run works as before (the page answers 404)."""
    from . import page_assets

    try:
        shutil.copyfile(page_assets.build(), state / page_assets.ASSET)
    except page_assets.PageBuildError as err:
        print(f"hanctl run: {err}; the page answers 404", file=sys.stderr)


def argv(heap):
    return runtime.micropython_argv_code(MAIN, heap)


def env(uart, http=None):
    e = runtime.micropython_env()
    e["HANPORT_UART"] = uart
    e.pop("HANPORT_HTTP", None)  # only --http says where to listen
    if http:
        e["HANPORT_HTTP"] = http
    return e


def check_http(where):
    """HOST:PORT of --http, checked: (host, port); ValueError says what is wrong."""
    host, sep, port = where.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--http {where!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def run_command(args):
    keep = args.state is not None
    state = args.state or tempfile.mkdtemp(prefix="hanport-")
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _stop)
        try:
            prepare(state, args.config)
        except OSError as err:  # a folder, or not readable: one line, not a traceback
            print(f"hanctl run: {args.config}: cannot be read ({err.strerror})", file=sys.stderr)
            return 1
        if args.http:
            try:
                check_http(args.http)
            except ValueError as err:
                print(f"hanctl run: {err}", file=sys.stderr)
                return 2
        heap = runtime.check_heap(args.heap or runtime.default_heap())
        # The first line says what runs: memory figures mean little without it.
        scaled = "" if args.heap or heap == runtime.DEFAULT_HEAP else ", scaled for 64-bit"
        print(f"hanctl run: {runtime.describe_image()}, heap {heap}{scaled}", flush=True)
        while True:
            proc = subprocess.run(argv(heap), cwd=state, env=env(args.uart, args.http))
            if proc.returncode != RESTART:
                return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    except Stopped as stop:
        return 128 + stop.signum
    except KeyboardInterrupt:
        return 130
    except runtime.MissingInterpreter as err:
        print(f"hanctl run: {err}", file=sys.stderr)
        return 1
    finally:
        if not keep:
            shutil.rmtree(state, ignore_errors=True)
