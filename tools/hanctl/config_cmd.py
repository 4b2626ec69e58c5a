"""`hanctl config`: the dongle's config.json on the host.

`validate FILE` runs the firmware's own validator (firmware/config.py, in this CPython), so
the owner sees exactly the messages the dongle would log, before flashing anything.
"""

from pathlib import Path

from . import runtime


def register(subparsers):
    parser = subparsers.add_parser("config", help="check (and, later, write) a config.json")
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    v = sub.add_parser("validate", help="check FILE as the dongle would, same messages")
    v.add_argument("file", metavar="FILE")
    v.add_argument(
        "--unix",
        action="store_true",
        help="for `hanctl run` on the unix port: no Wi-Fi or board needed",
    )
    v.set_defaults(run=validate_command)


def validate_command(args):
    runtime.use_firmware_in_cpython()
    import config  # firmware/config.py

    path = Path(args.file)
    try:
        raw = path.read_bytes()
    except OSError as err:
        print(f"{path}: cannot be read ({err.strerror}); give the path of a config.json")
        return 1
    cfg, problems = config.parse(raw, path.name, unix=args.unix)
    for problem in problems:
        print(problem)  # the validator never quotes a secret
    if cfg is None or problems:
        return 1
    print(f"{path}: valid ({len(cfg['destinations'])} destination(s))")
    return 0
