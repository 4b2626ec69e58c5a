"""An MQTT broker on a free loopback port, for `hanctl demo`.

Debian's mosquitto when it is installed (the broker the tests and most homes run), else
amqtt: a pure-Python MQTT 3.1.1 broker from PyPI, run on an event loop in a thread of this
process, so a machine without mosquitto still gets the whole demo. Both listen on
127.0.0.1 only, let anonymous clients in, keep no state on disk and write their log into
the folder they are given.
"""

import asyncio
import getpass
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

CHOICES = ("mosquitto", "amqtt")
_LOGGERS = ("amqtt", "transitions")  # amqtt's own, and its state machine's
START_SECONDS = 10


class BrokerError(RuntimeError):
    """The broker did not start (missing, died, did not listen)."""


def mosquitto_exe():
    # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port():
    """A TCP port free on 127.0.0.1 now (hanctl's brokers and the tests' alike)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose(choice, folder):
    """A broker, not started yet: `choice` is "mosquitto", "amqtt" or None (mosquitto if
    installed). Its stop() may be called whether or not start() got far."""
    if choice is None:
        choice = "mosquitto" if mosquitto_exe() else "amqtt"
    return Mosquitto(folder) if choice == "mosquitto" else Amqtt(folder)


class Mosquitto:
    """mosquitto on its own config: one loopback listener, anonymous, no persistence."""

    name = "mosquitto"

    def __init__(self, folder):
        self.exe = mosquitto_exe()
        self.port = free_port()
        self.log = Path(folder) / "mosquitto.log"
        self.conf = Path(folder) / "mosquitto.conf"
        self.proc = None

    def start(self):
        if self.exe is None:
            raise BrokerError("mosquitto is not installed (apt install mosquitto)")
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # As root, mosquitto would switch to the `mosquitto` user, who cannot write a log
            # in this user's temporary folder.
            f"user {getpass.getuser()}",
            f"log_dest file {self.log}",
            "persistence false",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        with open(self.log.with_suffix(".err"), "wb") as err:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.log.with_suffix(".err").read_text(errors="replace").strip()
                raise BrokerError(f"mosquitto exited: {said or self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Amqtt:
    """amqtt's Broker on an event loop in a daemon thread; its log goes to amqtt.log."""

    name = "amqtt"

    def __init__(self, folder):
        self.log = Path(folder) / "amqtt.log"
        self.port = None
        self._loop = None
        self._broker = None
        self._thread = None
        self._ready = threading.Event()
        self._failure = None
        self._handler = None

    def start(self):
        try:
            from amqtt.broker import Broker
        except ImportError as err:
            raise BrokerError(f"amqtt is not installed (pip install amqtt): {err}") from err
        self._handler = handler = logging.FileHandler(self.log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        for name in _LOGGERS:  # into the file, not over the monitor
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        config = {
            # Port 0: the kernel picks a free one, read back below (no race with another
            # program for a port chosen in advance).
            "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
            # Only anonymous login: no $SYS topics, no packet logging.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._log_exception)
        self._thread = threading.Thread(target=self._run, args=(Broker, config), daemon=True)
        self._thread.start()
        if not self._ready.wait(START_SECONDS) or self._failure:
            raise BrokerError(f"amqtt did not start: {self._failure or 'timed out'}")
        return self

    def _run(self, broker_class, config):
        asyncio.set_event_loop(self._loop)

        async def begin():
            self._broker = broker_class(config)
            await self._broker.start()
            server = self._broker._servers["default"].instance  # amqtt 0.12 has no accessor
            self.port = server.sockets[0].getsockname()[1]

        try:
            self._loop.run_until_complete(begin())
        except Exception as err:  # amqtt raises its own kinds too: all go to start()
            self._failure = repr(err)
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def _log_exception(self, loop, context):
        logging.getLogger("amqtt").error("event loop: %s", context.get("message"))

    def stop(self):
        if self._thread is None or not self._thread.is_alive():
            return
        if self._broker is not None:
            done = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                done.result(5)
            except Exception as err:  # stopping anyway; the log says why
                logging.getLogger("amqtt").error("shutdown: %r", err)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        for name in _LOGGERS:
            logging.getLogger(name).removeHandler(self._handler)
        self._handler.close()
