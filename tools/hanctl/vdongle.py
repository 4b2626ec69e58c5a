"""`hanctl vdongle`: not written yet (issue 4)."""


def register(subparsers):
    subparsers.add_parser("virtual-dongle", help="(not yet)").set_defaults(run=lambda args: 2)
