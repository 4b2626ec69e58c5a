"""Fixtures and hooks only: the firmware on CPython's path, the TLS tests' preconditions,
the parts an end-to-end test stops, a virtual dongle. What tests share otherwise is in
modules they import by name (mp, rig, frames, configs, ...): host_tests is on the module
path through pytest's `pythonpath` setting in pyproject.toml."""

import shutil

import pytest

from hanctl import runtime

runtime.use_firmware_in_cpython()
# The OBIS table as a P1 dongle's, in every CPython test: p1 adds its sub-meters' fields
# (gas_volume...) to obis.UNIT and obis.ORDER when it loads, and tests import it in no
# fixed order. The HAN dongle's table, without them, is the MicroPython runs' (test_heap).
import p1  # noqa: E402, F401


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
