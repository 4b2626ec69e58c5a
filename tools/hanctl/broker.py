"""An MQTT broker on loopback: for `hanctl demo`, `hanctl bench --pipeline` and the tests.

Debian's mosquitto when it is installed (the broker the tests and most homes run), else, for
the demo, amqtt: a pure-Python MQTT 3.1.1 broker from PyPI, run on an event loop in a thread
of this process, so a machine without mosquitto still gets the whole demo. Both listen on
127.0.0.1 only and write their log into the folder they are given. The demo's let anonymous
clients in and keep no state on disk; Mosquitto's options (password files, a TLS listener,
log types, a store, more config lines) are the tests'.
"""

import asyncio
import getpass
import logging
import os
import shutil
import signal
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


# A certificate folder's files (hanctl.certs.make_ca): the CA, the server's certificate and key.
CERT_FILES = ("ca.pem", "server.pem", "server.key")


def password_file(path, users):
    """A mosquitto password file at path with users {name: password} (mosquitto_passwd)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for user, password in users.items():
        create = [] if path.exists() else ["-c"]
        subprocess.run(
            ["mosquitto_passwd", "-b", *create, str(path), user, password],
            check=True,
            capture_output=True,
        )
    return path


class Mosquitto:
    """Debian's mosquitto on its own config in `folder`, listening on 127.0.0.1 only: the one
    launcher for `hanctl demo`, `hanctl bench --pipeline` and the tests.

    - port: the plain listener's (default: a free one); users: {name: password} who may log
      in there (a password file .passwd, anonymous clients refused), None: anyone may.
    - tls: a certificate folder (CERT_FILES in it) or a (cafile, certfile, keyfile) triple:
      a second listener, with TLS, on tls_port (default: a free one); tls_users as users.
    - log_types: mosquitto's log_type lines (default: its own choice); the log is .log.
    - persistence: keep the store (sessions, queued messages) in folder across restarts.
    - extra: more lines, at the end of the config.

    The config (and password files) are written here, so a caller may change them before
    start(); start() may follow stop() (the same broker back). stop() may be called whether
    or not start() got far.
    """

    name = "mosquitto"

    def __init__(
        self,
        folder,
        port=None,
        *,
        users=None,
        tls=None,
        tls_port=None,
        tls_users=None,
        log_types=(),
        persistence=False,
        extra=(),
    ):
        self.exe = mosquitto_exe()
        self.dir = Path(folder)
        self.port = port or free_port()
        self.tls_port = (tls_port or free_port()) if tls else None
        self.log = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        self.output = self.dir / "mosquitto.err"  # what it writes to stdout and stderr
        self.proc = None
        self.passwd = password_file(self.dir / "passwd", users) if users else None
        self.tls_passwd = None
        if tls_users:
            self.tls_passwd = password_file(self.dir / "passwd-tls", tls_users)
            self.passwd = self.passwd or self.tls_passwd
        lines = [
            "per_listener_settings true",  # must come before any listener or security line
            # As root, mosquitto would switch to the `mosquitto` user, who cannot write a log
            # in this user's temporary folder (mode 700), nor read a key there.
            f"user {getpass.getuser()}",
            f"log_dest file {self.log}",
            *(f"log_type {t}" for t in log_types),
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {self.dir}/"]
        else:
            lines += ["persistence false"]
        lines += _listener(self.port, self.passwd if users else None)
        if tls:
            if isinstance(tls, (str, Path)):
                tls = [Path(tls) / name for name in CERT_FILES]
            lines += _listener(self.tls_port, self.tls_passwd)
            lines += [f"{k}file {f}" for k, f in zip(("ca", "cert", "key"), tls, strict=True)]
        self.conf.write_text("\n".join([*lines, *extra]) + "\n")

    def ports(self):
        return [p for p in (self.port, self.tls_port) if p]

    def start(self):
        if self.exe is None:
            raise BrokerError("mosquitto is not installed (apt install mosquitto)")
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_SECONDS
        waiting = self.ports()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.output.read_text(errors="replace").strip()
                raise BrokerError(f"mosquitto exited: {said or self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2).close()
                waiting.pop(0)
                if not waiting:
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {waiting[0]}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a test may have stopped it (SIGSTOP)
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _listener(port, passwd):
    """A listener's lines: anyone may connect, or only the users of the password file."""
    if passwd is None:
        return [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    return [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwd}"]


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
