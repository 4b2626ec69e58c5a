"""hanctl command line: a thin dispatcher, each subcommand in its own module.

A subcommand module provides register(subparsers), which adds its parser and sets
`run` to a function taking the parsed args and returning the exit status.
"""

import argparse

from . import bench, config_cmd, decode, demo, run, simulate

SUBCOMMANDS = (decode, demo, run, simulate, config_cmd, bench)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hanctl", description="Host tools for hanport.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)
