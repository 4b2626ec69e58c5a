"""`hanctl config`: the dongle's config.json on the host.

`validate FILE` runs the firmware's own validator (firmware/config.py, in this CPython), so
the owner sees exactly the messages the dongle would log, before flashing anything.
It checks for a board, as `push` and `install` do; `--target unix` checks as `hanctl run`'s
firmware does (the unix port: no Wi-Fi networks, no board).
`init` asks for Wi-Fi networks and destinations and writes a config.json (wizard.py);
`push` and `pull` copy it to and from a dongle over mpremote (device.py).
`setup-key` shows the password of the dongle's setup-mode access point (firmware/portal.py),
read from its flash over USB.
`password FILE` sets the owner's page's password in FILE: "page" gets its salted hash
(PBKDF2-HMAC-SHA256, as firmware/page.py checks it), never the password itself.
"""

import getpass
import hashlib
import json
import os
import sys
from pathlib import Path

from . import runtime


def register(subparsers):
    parser = subparsers.add_parser("config", help="write, check, push and pull a config.json")
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    about = "check FILE as the dongle would, same messages (for a board unless --target unix)"
    v = sub.add_parser("validate", help=about, description=about)
    v.add_argument("file", metavar="FILE")
    add_target(v)
    v.add_argument(
        "--unix",
        dest="target",
        action="store_const",
        const="unix",
        help="the same as --target unix",
    )
    v.set_defaults(run=validate_command)

    i = sub.add_parser(
        "init", help="answer a few questions, get a config.json (for a board: Wi-Fi, board)"
    )
    i.add_argument("file", metavar="FILE", nargs="?", default="config.json")
    i.set_defaults(run=_init)

    about = (
        "write FILE to the dongle as config.json, once checked (for a board unless --target unix)"
    )
    push = sub.add_parser("push", help=about, description=about)
    push.add_argument("--port", required=True, help="serial port or virtual dongle path")
    push.add_argument("file", metavar="FILE")
    add_target(push)
    push.set_defaults(run=_push)

    pull = sub.add_parser("pull", help="read the dongle's config.json into FILE")
    pull.add_argument("--port", required=True, help="serial port or virtual dongle path")
    pull.add_argument("file", metavar="FILE")
    pull.set_defaults(run=_pull)

    about = "show the password of the dongle's setup-mode Wi-Fi (hanport-XXXXXX), over USB"
    key = sub.add_parser("setup-key", help=about, description=about)
    key.add_argument("--port", required=True, help="serial port or virtual dongle path")
    key.set_defaults(run=_setup_key)

    about = "set the owner's page's password in FILE (kept as a salted hash) and turn the page on"
    pw = sub.add_parser("password", help=about, description=about)
    pw.add_argument("file", metavar="FILE")
    pw.add_argument(
        "--stdin", action="store_true", help="read the password from standard input's first line"
    )
    pw.set_defaults(run=password_command)


# Which firmware a config is checked for (firmware/config.py's unix flag): a board's needs
# "wifi" networks and a "board"; the MicroPython unix port's (`hanctl run`, whose firmware
# checks with unix=True) needs neither. Every command that checks a config says which.
TARGETS = ("board", "unix")


def add_target(parser):
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="board",
        help='the firmware FILE is for: "board" (default; Wi-Fi networks and a board name '
        'needed) or "unix", the MicroPython unix port of `hanctl run` (neither needed)',
    )


# The wizard and the device link import mpremote and pyserial: loaded only when used.
def _init(args):
    from . import wizard

    return wizard.init_command(args)


def _push(args):
    from . import device

    return device.push_command(args)


def _pull(args):
    from . import device

    return device.pull_command(args)


def _setup_key(args):
    from . import device

    return device.setup_key_command(args)


def validate_command(args):
    runtime.use_firmware_in_cpython()
    import config  # firmware/config.py

    path = Path(args.file)
    try:
        raw = path.read_bytes()
    except OSError as err:
        print(f"{path}: cannot be read ({err.strerror}); give the path of a config.json")
        return 1
    cfg, problems = config.parse(raw, path.name, unix=args.target == "unix")
    for problem in problems:
        print(problem)  # the validator never quotes a secret
    if cfg is None or problems:
        return 1
    print(f"{path}: valid ({len(cfg['destinations'])} destination(s))")
    return 0


def page_section(password, page=None, iterations=None):
    """The "page" section for password: page's other keys kept, a new salt and hash."""
    runtime.use_firmware_in_cpython()
    import config  # firmware/config.py: the iteration count the firmware writes

    out = dict(page or {})
    salt = os.urandom(16)
    n = iterations or config.PAGE_ITERATIONS
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, n)
    out.update(enabled=True, password_hash=digest.hex(), salt=salt.hex(), iterations=n)
    return out


def password_command(args):
    path = Path(args.file)
    try:
        cfg = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        print(f"{path}: cannot be read as JSON ({err}); write it first (hanctl config init)")
        return 1
    if not isinstance(cfg, dict):
        print(f"{path}: is not a config object")
        return 1
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("the page's password: ")
        if getpass.getpass("again: ") != password:
            print("the two differ; nothing written")
            return 1
    if len(password) < 8:
        print("a page password has at least 8 characters; nothing written")
        return 1
    cfg["page"] = page_section(password, cfg.get("page"))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    tmp.replace(path)
    print(f"{path}: the page's password set (as a salted hash); the page is on")
    return 0
