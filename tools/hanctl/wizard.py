"""`hanctl config init [FILE]`: a few questions, a config.json the dongle accepts.

Each answer is checked the moment it is given by the firmware's own validator
(firmware/config.py) and asked again with its message, so the wizard holds no copy of the
rules: key names, limits and defaults (port, topic, live interval) come from that module.

Questions go to stdout and answers come from stdin, one line each, so the wizard can be
driven by a script. Passwords are read without echo and never printed back.
"""

import getpass
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

from . import boards, runtime

runtime.use_firmware_in_cpython()
import config  # noqa: E402 - firmware/config.py, on the path only from here on
import obis  # noqa: E402


class AnswersEnded(Exception):
    """stdin ended before the last question."""


class Console:
    """Questions out, answers in, a line each.

    At a terminal a secret is read with getpass, which turns echo off. From a pipe it is a
    plain line: getpass would read the terminal behind the pipe instead when there is one
    (the scripted answers never reach it), and when there is none it reads stdin after
    warning on stderr that it cannot turn echo off (GetPassWarning; CPython 3.11, tried).
    Piped answers are not echoed, so each prompt gets its line end from here."""

    def __init__(self, stdin=None, stdout=None):
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.piped = not self.stdin.isatty()

    def say(self, text=""):
        print(text, file=self.stdout, flush=True)

    def line(self, prompt):
        return self._read(prompt).strip()

    def secret(self, prompt):
        if not self.piped:
            return getpass.getpass(prompt)
        return self._read(prompt).rstrip("\r\n")  # spaces may belong to a password

    def _read(self, prompt):
        self.stdout.write(prompt)
        self.stdout.flush()
        text = self.stdin.readline()
        if not text:
            raise AnswersEnded
        if self.piped:
            self.stdout.write("\n")
        return text


def _number(text):
    """A whole number where one is meant; other text goes on to the validator, whose
    message says what is wrong with it."""
    return int(text) if text.isdigit() else text


def _yes(text):
    if text.lower() in ("y", "yes"):
        return True
    if text.lower() in ("n", "no"):
        return False
    raise ValueError("answer y or n")


def _meter(text):
    words = text.split()
    if len(words) > 2:
        raise ValueError('answer "auto" or a speed and parity, e.g. "2400 8E1"')
    baud = _number(words[0]) if words else "auto"
    return {"baud": baud, "parity": words[1].upper() if len(words) == 2 else "auto"}


def _share(text):
    if text == "?":
        import p1  # noqa: F401 - adds the P1 sub-meters' fields (gas_volume...) to the table

        raise ValueError("fields: " + ", ".join(obis.ORDER))
    if text in config.LEVELS:
        return text
    return [field.strip() for field in text.split(",")]


class Wizard:
    def __init__(self, console):
        self.io = console
        self.cfg = {"wifi": []}  # keys in the order they are asked, as the file lists them

    def problems(self, path):
        """The validator's problems with the config so far at `path` and below; the keys
        not asked yet are missing, and their problems are not this answer's."""
        _, problems = config.validate(self.cfg)
        return [p for p in problems if p.startswith(path) and p[len(path)] in ":.["]

    def ask(self, question, default=None, parse=str, blank_ok=False):
        shown = "" if default is None else f" [{default}]"
        while True:
            text = self.io.line(f"{question}{shown}: ")
            if not text and default is not None:
                text = str(default)
            if not text and blank_ok:
                return None
            try:
                return parse(text)
            except ValueError as err:
                self.io.say(f"  {err}")

    def fill(self, obj, key, path, question, default=None, parse=str, secret=False, last=False):
        """Ask until the validator takes the answer at obj[key] (path) and return it. A blank
        answer with no default leaves the key out, when the validator allows that; when
        `last`, it ends a list instead, and None is returned unchecked."""
        while True:
            if secret:
                value = self.io.secret(f"{question}: ") or None
            else:
                value = self.ask(question, default, parse, blank_ok=True)
            if value is None and last:
                return None
            if value is None:
                obj.pop(key, None)
            else:
                obj[key] = value
            problems = self.problems(path)
            if not problems:
                return value
            for p in problems:
                self.io.say(f"  {p}")

    def run(self):
        self.io.say("A config.json for hanport. Blank answers take the [default].")
        self.wifi()
        name = "hanport-" + secrets.token_hex(3)
        self.fill(self.cfg, "hostname", "hostname", "Hostname", default=name)
        self.board()
        self.fill(self.cfg, "meter", "meter", 'Meter link: "auto", or speed and parity like '
                 '"2400 8E1"', default="auto", parse=_meter)  # fmt: skip
        self.keys()
        self.fill(self.cfg, "ntp", "ntp", 'NTP server ("none": no clock sync)',
                 default="pool.ntp.org", parse=lambda t: None if t == "none" else t)  # fmt: skip
        self.cfg["ntp"] = self.cfg.get("ntp")  # None is written as null: chosen, not forgotten
        self.cfg["destinations"] = []
        for i in range(config.MAX_DESTINATIONS):
            if not self.destination(i):
                break
        return self.cfg

    def keys(self):
        """A meter that ciphers its pushes (Denmark, Austria, Luxembourg, Switzerland): the
        keys from the grid company, asked like passwords (not echoed) and never repeated."""
        if not self.ask("Does the meter encrypt its pushes, with keys from the grid company "
                        "(y/n)", "n", _yes):  # fmt: skip
            return
        meter = self.cfg["meter"]
        while not self.fill(meter, "key", "meter.key", "Its key (32 hex digits)", secret=True):
            self.io.say("  an encrypting meter needs its key")
        # Luxembourg's P1 meters share one published auth key (firmware/p1cipher.py): none
        # is needed there, the telegram's CRC tells a wrong key.
        self.fill(meter, "auth_key", "meter.auth_key",
                  "Its authentication key (32 hex digits; blank: none, as in Luxembourg)",
                  secret=True)  # fmt: skip

    def wifi(self):
        nets = self.cfg["wifi"]
        for i in range(config.MAX_NETWORKS):
            net = {}
            nets.append(net)
            question = f"Wi-Fi network {i + 1}" + (" (blank: no more)" if i else "")
            ssid = self.fill(net, "ssid", f"wifi[{i}].ssid", question, last=i > 0)
            if ssid is None:
                nets.pop()
                return
            self.fill(net, "password", f"wifi[{i}].password",
                     f"Password of {ssid} (blank: an open network)", secret=True)  # fmt: skip

    def board(self):
        names = boards.board_names()
        self.io.say("Boards: " + ", ".join(f"{n}) {name}" for n, name in enumerate(names, 1)))
        while True:
            answer = self.ask("Board (number or name)", names[0] if len(names) == 1 else None)
            if answer.isdigit() and 1 <= int(answer) <= len(names):
                answer = names[int(answer) - 1]
            if answer in names:
                self.cfg["board"] = answer
                return
            self.io.say(f"  {answer!r} is not one of the boards; answer a number from the list")

    def destination(self, i):
        dest = {}
        self.cfg["destinations"].append(dest)
        at = f"destinations[{i}]"
        blank = "none" if i == 0 else "no more"
        question = f"Destination {i + 1}: a name, e.g. home-assistant (blank: {blank})"
        if self.fill(dest, "name", at + ".name", question, last=True) is None:
            self.cfg["destinations"].pop()
            return False
        self.fill(dest, "host", at + ".host", "MQTT broker (name or IP address)")
        dest["tls"] = None  # written as null: plain MQTT, chosen
        if self.ask("TLS (y/n)", "n", _yes):
            dest["tls"] = {}
            self.fill(dest["tls"], "ca", at + ".tls", "CA certificate file on the dongle, "
                     "next to config.json", default="ca.pem")  # fmt: skip
        self.fill(dest, "port", at + ".port", "Port", self.default(i, "port"), _number)
        if self.fill(dest, "user", at + ".user", "MQTT user (blank: none)"):
            self.fill(dest, "password", at + ".password", "MQTT password", secret=True)
        self.fill(dest, "topic", at + ".topic", "Topic", self.default(i, "topic"))
        self.io.say(f"What {dest['name']} gets: full (everything), live (power only, at most "
                    "once per interval), hourly (the energy registers), or fields separated by "
                    "commas (? lists them)")  # fmt: skip
        self.fill(dest, "share", at + ".share", "Share", parse=_share)
        if dest["share"] == "live":
            self.fill(dest, "interval", at + ".interval", "Seconds between readings",
                     self.default(i, "interval"), _number)  # fmt: skip
        dest["discovery"] = self.ask("Home Assistant discovery (y/n)", "n", _yes)
        return True

    def default(self, i, key):
        """The value the validator gives destinations[i][key] when the key is left out
        (None if it gives none), found by validating a copy of the answers so far, with
        stand-ins for the required keys not asked yet."""
        probe = json.loads(json.dumps(self.cfg))
        dest = probe["destinations"][i]
        for k, stand_in in (("name", "x"), ("host", "x"), ("share", "live")):
            dest.setdefault(k, stand_in)
        dest.pop(key, None)
        out, _ = config.validate(probe)
        return out["destinations"][i][key] if out else None


def summary(cfg):
    """cfg as JSON with every password and meter key shown as "(set)"."""
    shown = json.loads(json.dumps(cfg))
    for obj in shown["wifi"] + shown["destinations"]:
        if "password" in obj:
            obj["password"] = "(set)"
    meter = shown.get("meter") or {}
    for key in ("key", "auth_key"):
        if key in meter:
            meter[key] = "(set)"
    return json.dumps(shown, indent=2)


def write(cfg, path):
    """Write cfg so that a crash leaves the old file or the new one, never half of either;
    readable by its owner only (it holds passwords): mkstemp makes the file 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(cfg, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def init_command(args, console=None):
    io = console or Console()
    path = Path(args.file)
    try:
        if path.exists() and not Wizard(io).ask(f"{path} exists; replace it (y/n)", "n", _yes):
            io.say(f"{path} left as it was")
            return 1
        cfg = Wizard(io).run()
    except AnswersEnded:
        print("\nhanctl config init: the answers ended early; nothing written", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhanctl config init: stopped; nothing written", file=sys.stderr)
        return 130
    _, problems = config.validate(cfg)
    if problems:  # each answer passed alone; the whole must pass too before it is written
        for p in problems:
            io.say(p)
        return 1
    io.say(summary(cfg))
    try:
        write(cfg, path)
    except OSError as err:
        print(f"hanctl config init: {path} cannot be written ({err.strerror})", file=sys.stderr)
        return 1
    io.say(f"{path}: written. Put it on the dongle with `hanctl config push --port PORT "
           f"{path}`, or give it to `hanctl flash --config`.")  # fmt: skip
    for dest in cfg["destinations"]:
        if dest.get("tls") and dest["tls"].get("ca"):
            io.say(f"{dest['name']} uses TLS: copy {dest['tls']['ca']} onto the dongle too.")
    return 0
