"""Coverage-guided fuzzing of the frame assembler and decoder with atheris (CPython).

    PYTHONPATH=host_tests .venv/bin/python -m stress.fuzz.fuzz_decoder \\
        -runs=1000000 -max_len=4096 \\
        -entropic_scale_per_exec_time=1 -seed=1 -artifact_prefix=build/fuzz/ \\
        -print_final_stats=1 build/fuzz/corpus

Arguments are libFuzzer's. The first directory given is the working corpus: the seeds
(corpus.py: every real capture, raw and resealed, the APDUs inside them) are written into it
before the run, and libFuzzer adds each input that reached new code. Every input goes
through check.Harness (the properties are listed there); a broken one raises, and
libFuzzer saves the input as build/fuzz/crash-<sha1>. To replay one:

    PYTHONPATH=host_tests .venv/bin/python -m stress.fuzz.fuzz_decoder build/fuzz/crash-<sha1>

-max_len=4096: twice the frame buffer, so streams longer than any frame are tried.
-entropic_scale_per_exec_time=1: without it the run spends its time on a few inputs of
runs of '/' before a P1 telegram, each '/' a telegram candidate searched again to the
'!' (0.5-1 s an input here; see docs/reliability.md): 50-60 inputs/s instead of ~500.

Every 100,000 inputs a line "fuzz: inputs=... kinds=..." tallies what the decoder said.
Only the firmware modules are instrumented for coverage, the harness is not. atheris is
the extra `fuzz` of hanport: `pip install -e '.[fuzz]'` (CPython 3.11 wheels exist for Linux).
"""

import hashlib
import importlib
import os
import sys

import atheris

from hanctl import runtime

runtime.use_firmware_in_cpython()
FIRMWARE = sorted(p.stem for p in runtime.firmware_dir().glob("*.py"))
# What the decoder imports, some of it only on first use (p1, gbt, objlist, the quirks).
DECODER_MODULES = ("decoder", "p1", "gbt", "objlist", "kaifa", "kamstrup")


def _import_firmware(instrument):
    """A fresh copy of the decoder's modules, {name: module}; instrumented for coverage or
    not. atheris makes Python code ~10 times slower (measured: a whole-stream decode 4,560
    to 446 inputs/s), so only the reference decode of check.Harness runs instrumented and
    the byte-by-byte, chunked and long-lived decoders run the plain copy: 125 -> ~300/s."""
    for name in FIRMWARE:
        sys.modules.pop(name, None)
    if instrument:
        with atheris.instrument_imports(include=FIRMWARE):
            for name in DECODER_MODULES:
                importlib.import_module(name)
    else:
        for name in DECODER_MODULES:
            importlib.import_module(name)
    return {name: sys.modules[name] for name in FIRMWARE if name in sys.modules}


TRACED = _import_firmware(True)
PLAIN = _import_firmware(False)  # left in sys.modules: check.py and corpus.py use it

from stress.fuzz import check, corpus  # noqa: E402


def switch(traced):
    # The decoder imports p1, gbt, objlist and the quirk modules when a frame first needs
    # them, from sys.modules: each copy must find its own.
    sys.modules.update(TRACED if traced else PLAIN)


REPORT_EVERY = 100_000
harness = check.Harness(reference=TRACED["decoder"].Decoder, switch=switch)


def test_one_input(data):
    harness.run(data)  # a Defect propagates: libFuzzer reports it and saves the input
    if harness.inputs % REPORT_EVERY == 0:
        print("fuzz: " + harness.summary(), file=sys.stderr, flush=True)


def write_seeds(directory):
    os.makedirs(directory, exist_ok=True)
    for seed in corpus.seeds():
        path = os.path.join(directory, "seed-" + hashlib.sha1(seed).hexdigest()[:16])
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(seed)


def main():
    dirs = [a for a in sys.argv[1:] if not a.startswith("-") and not os.path.isfile(a)]
    if dirs:
        write_seeds(dirs[0])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
