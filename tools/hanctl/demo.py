"""`hanctl demo`: placeholder until the real demo exists.

Decodes the frames of one real Kaifa capture from the shared test vectors and prints the
readings, so `./dev demo` shows the firmware decoder at work on a fresh checkout.
"""

import json
import os
import sys
from pathlib import Path

from . import decode, runtime

SAMPLE = Path("hdlc") / "kaifa_no_roarfred.json"


def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="decode a short sample stream of real meter frames (placeholder)"
    )
    parser.set_defaults(run=run_command)


def vectors_dir():
    # The vectors live beside the repository (../shared/vectors); HANPORT_VECTORS overrides.
    override = os.environ.get("HANPORT_VECTORS")
    if override:
        return Path(override)
    return runtime.repo_root().parent / "shared" / "vectors"


def sample_stream(path):
    """The frames of a vectors file joined into one byte stream, as a meter would send them."""
    with open(path, encoding="utf-8") as vectors:
        frames = json.load(vectors)["frames"]
    stream = bytearray()
    for frame in frames:
        if "hex" in frame:
            stream += bytes.fromhex(frame["hex"])
        elif "text" in frame:
            stream += frame["text"].encode("ascii")
    return bytes(stream)


def run_command(args):
    path = vectors_dir() / SAMPLE
    if not path.is_file():
        print(
            f"hanctl demo: for now the demo needs the shared test vectors, and {path} is "
            "missing; set HANPORT_VECTORS to the vectors folder",
            file=sys.stderr,
        )
        return 1
    try:
        return decode.decode(sample_stream(path), "micropython")
    except runtime.MissingInterpreter as err:
        print(f"hanctl demo: {err}", file=sys.stderr)
        return 1
