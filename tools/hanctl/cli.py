"""hanctl command line: a thin dispatcher, each subcommand in its own module.

A subcommand module provides register(subparsers), which adds its parser and sets
`run` to a function taking the parsed args and returning the exit status.
"""

import argparse
import sys


def subcommands(argv):
    """The subcommand modules to register for the command line argv. `hanctl decode` runs
    once per capture, in pipelines, and `hanctl bench --whole-process` counts its start-up
    per frame: it loads only its own module (50 ms to start instead of 130 ms, the others
    bringing asyncio, pyserial and paho-mqtt in)."""
    if argv[:1] == ["decode"]:
        from . import decode

        return (decode,)
    from . import (
        account,
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

    return (
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
        account,
        bench,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hanctl", description="Host tools for hanport.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in subcommands(sys.argv[1:] if argv is None else argv):
        module.register(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)
