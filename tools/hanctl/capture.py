"""`hanctl capture`: not written yet (issue 4)."""


def register(subparsers):
    subparsers.add_parser("capture", help="(not yet)").set_defaults(run=lambda args: 2)
