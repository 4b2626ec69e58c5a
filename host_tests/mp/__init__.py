"""What the tests run inside the MicroPython unix port, and the one way they run it.

The *_driver.py scripts, esp32_boot.py and the esp32_model/ package run on the unix port
with the shipped firmware on its module path (hanctl.runtime's micropython_argv and
micropython_env); some drivers also run, or are imported, on CPython to compare. Nothing
here imports a driver: CPython imports one by name (`from mp import dest_driver`).

- run_driver: a driver (or a statement, code=) to its end, stdin given, the
  CompletedProcess.
- start_driver: a driver as a child process the caller talks to (a Popen).
- run_cases: case lines through case_driver.py under either runtime.
- run_lines: lines through a driver that answers each with one line (gcm_driver.py), under
  either runtime.
"""

import os
import subprocess
import sys
from pathlib import Path

from hanctl import runtime

HERE = Path(__file__).resolve().parent
RUNTIMES = ("micropython", "cpython")

# The vector driver also builds each push's whole A-XDR tree and its JSON to compare with
# dlms-cosem, which the dongle never does; that scaffolding gets room of its own. What the
# device itself needs is measured at -X heapsize=96K by test_heap.py and the benchmark.
DRIVER_HEAP = "256K"


def command(script, heap="96K", paths=(), env=None, which="micropython", exe=None, code=None):
    """(argv, env) that run script (a name in host_tests/mp/, or a path) under `which`:
    the MicroPython unix port with the firmware, and paths, on its module path; or CPython
    with hanctl's shim and the firmware on its path. env: more environment variables.
    exe: that MicroPython interpreter (default runtime.micropython_exe()); code: run this
    statement (`-c`) on it instead of a script."""
    if which == "micropython":
        full_env = runtime.micropython_env(paths)
        if code is not None:
            argv = runtime.micropython_argv_code(code, heap, exe)
        else:
            argv = runtime.micropython_argv(HERE / script, heap, exe)
    else:
        script = HERE / script
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(runtime.SHIM_DIR), str(runtime.firmware_dir()), *map(str, paths)]
        )
        argv = [sys.executable, "-u", str(script)]
    full_env.update(env or {})
    return argv, full_env


def run_driver(
    script=None, stdin="", heap="96K", timeout=120, paths=(), env=None, exe=None, code=None
):
    """script on the MicroPython unix port with the shipped firmware, stdin as given (not
    argv: the PyPI wrapper dies on a long argument); the CompletedProcess.
    paths: more folders on MicroPython's module path; env: more environment variables;
    exe, code: another interpreter, a statement instead of a script (see command())."""
    argv, full_env = command(script, heap, paths, env, exe=exe, code=code)
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env=full_env, timeout=timeout
    )


def start_driver(script, heap="96K", paths=(), env=None, which="micropython", **popen):
    """script as a child process (see command()); stdout and stderr are text pipes unless
    popen says otherwise (stdin, cwd, stderr=subprocess.STDOUT, ...)."""
    argv, full_env = command(script, heap, paths, env, which)
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True} | popen
    return subprocess.Popen(argv, env=full_env, **popen)


def run_cases(lines, which, heap=DRIVER_HEAP):
    """Feed case lines to case_driver.py under `which`; returns {case id: [output lines]}."""
    if which == "micropython":
        proc = run_driver("case_driver.py", "\n".join(lines) + "\n", heap, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = proc.stdout.splitlines()
    else:
        from mp import case_driver

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


def run_lines(driver, lines, which, heap="96K", timeout=600):
    """The output lines of `driver` (a module of host_tests/mp/ with run(line) -> line) for
    lines: on the MicroPython unix port at `heap`, or its run() called on CPython."""
    if which == "micropython":
        proc = run_driver(driver + ".py", "\n".join(lines) + "\n", heap=heap, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.splitlines()
    import importlib

    module = importlib.import_module("mp." + driver)
    return [module.run(line) for line in lines]
