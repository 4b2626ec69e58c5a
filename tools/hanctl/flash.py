"""`hanctl flash`: not written yet (issue 4)."""


def register(subparsers):
    subparsers.add_parser("flash", help="(not yet)").set_defaults(run=lambda args: 2)
