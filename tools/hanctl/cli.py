"""hanctl command line: a thin dispatcher, each subcommand in its own module.

A subcommand module provides register(subparsers), which adds its parser and sets
`run` to a function taking the parsed args and returning the exit status.
"""

import argparse

from . import (
    bench,
    capture,
    config_cmd,
    decode,
    demo,
    flash,
    install,
    monitor,
    run,
    simulate,
    vdongle,
)

SUBCOMMANDS = (
    flash,
    install,
    config_cmd,
    vdongle,
    simulate,
    capture,
    monitor,
    demo,
    run,
    decode,
    bench,
)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hanctl", description="Host tools for hanport.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)
