"""Shared fixtures: the firmware on CPython's path, and the decoder run over cases under
both runtimes (the MicroPython unix port as a subprocess, CPython in-process)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from hanctl import runtime

HERE = Path(__file__).resolve().parent

runtime.use_firmware_in_cpython()

RUNTIMES = ("micropython", "cpython")


def pytest_configure(config):
    """A frozen-unix image (HANPORT_MICROPYTHON) without the `tls` module would leave the
    TLS tests nothing to run on: tools/frozen-unix/build refuses to make one, and this
    refuses one built otherwise, rather than skip them."""
    exe = runtime.frozen_exe()
    if exe and not runtime.has_tls(exe):
        raise pytest.UsageError(f"{exe} has no tls module: build it with tools/frozen-unix/build")


def pytest_collection_modifyitems(config, items):
    """The TLS tests' CA is made by Debian's openssl: without it they skip and say so (./dev
    test installs it as root), rather than fail on a package that could be installed."""
    if shutil.which("openssl"):
        return
    skip = pytest.mark.skip(reason="openssl is not installed (apt-get install openssl)")
    for item in items:
        if "tls" in item.keywords:
            item.add_marker(skip)


# The vector driver also builds each push's whole A-XDR tree and its JSON to compare with
# dlms-cosem, which the dongle never does; that scaffolding gets room of its own. What the
# device itself needs is measured at -X heapsize=96K by test_heap.py and the benchmark.
DRIVER_HEAP = "256K"


def run_cases(lines, which, heap=DRIVER_HEAP):
    """Feed case lines to case_driver.py under `which`; returns {case id: [output lines]}."""
    if which == "micropython":
        proc = subprocess.run(
            runtime.micropython_argv(HERE / "case_driver.py", heap),
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            env=runtime.micropython_env(),
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = proc.stdout.splitlines()
    else:
        import case_driver

        out = []
        for line in lines:
            case_id, framing, payload = line.split(" ")
            chunks = [bytes.fromhex(h) for h in payload.split(",")]
            out += case_driver.run_case(case_id, framing, chunks)
    results = {}
    for text in out:
        kind, case_id, rest = text.split(" ", 2)
        results.setdefault(case_id, []).append((kind, rest))
    return results


@pytest.fixture
def parts(tmp_path):
    """(tmp_path, track): track(x) returns x and stops (or closes) it after the test, in
    reverse order: brokers, subscribers, meters and dongles of the end-to-end tests."""
    made = []

    def track(x):
        made.append(x)
        return x

    yield tmp_path, track
    for x in reversed(made):
        for stop in ("stop", "close"):
            if hasattr(x, stop):
                getattr(x, stop)()
                break


def run_driver(name, stdin, heap="96K", timeout=120, paths=(), env=None):
    """host_tests/<name> on the MicroPython unix port with the shipped firmware, stdin as
    given (not argv: the PyPI wrapper dies on a long argument); the CompletedProcess.
    paths: more folders on MicroPython's module path; env: more environment variables."""
    full_env = runtime.micropython_env(paths)
    full_env.update(env or {})
    return subprocess.run(
        runtime.micropython_argv(HERE / name, heap),
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture
def fs(tmp_path):
    """A virtual dongle's filesystem root."""
    root = tmp_path / "fs"
    root.mkdir()
    return root


@pytest.fixture
def dongle(fs):
    """A virtual dongle (hanctl virtual-dongle) on fs, stopped after the test."""
    from hanctl.vdongle import VirtualDongle

    with VirtualDongle(fs) as running:
        yield running
    assert running.error is None
