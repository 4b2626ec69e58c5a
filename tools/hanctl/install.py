"""`hanctl install`: not written yet (issue 4)."""


def register(subparsers):
    subparsers.add_parser("install", help="(not yet)").set_defaults(run=lambda args: 2)
