"""`hanctl demo`: the firmware decoder at work, with no hardware and no setup.

Until the full demo (simulated meter, firmware, broker, live view) exists, this decodes a
stream of meter frames on the MicroPython unix port and prints the canonical readings:
real Kaifa captures from the shared test vectors when they are beside the repository,
else List 1, 2 and 3 frames of each Norwegian meter type made by hanctl's encoder.
"""

import json
import os
import sys
from pathlib import Path

from . import decode, encoder, runtime

SAMPLE = Path("hdlc") / "kaifa_no_roarfred.json"


def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="decode a stream of meter frames on the MicroPython unix port"
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
    if path.is_file():
        print(f"hanctl demo: real Kaifa MA304H3E frames from {path}", file=sys.stderr)
        stream = sample_stream(path)
    else:
        print(
            "hanctl demo: frames of hanctl's meter encoder (Aidon, Kaifa, Kamstrup)",
            file=sys.stderr,
        )
        stream = b"".join(frame for _, frame in encoder.sample_frames())
    try:
        return decode.decode(stream, "micropython", show_errors=True)
    except runtime.MissingInterpreter as err:
        print(f"hanctl demo: {err}", file=sys.stderr)
        return 1
