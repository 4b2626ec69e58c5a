"""The connection audit: what the firmware's real main looks up and connects to, from
three witnesses that do not share a blind spot.

- inside the interpreter: mp/socket.py, a `socket` module found on MICROPYPATH before the
  built-in, logs every getaddrinfo() (host, port, the addresses it gave) and every socket
  made, to a file;
- the kernel's view of the interpreter: strace logs every network system call of the
  MicroPython process (connect, sendto, ...), which no Python code can hide from;
- outside: rig.dongle_sockets() polls /proc (what `ss -tunp` reads) for the sockets the
  dongle's process group holds, and each unconfigured broker's log shows any connection.

AuditDongle runs the same boot file as `hanctl run` (run.prepare, run.argv, run.env, the
restart loop on status 3), with the shim put first on the path and strace in front.
"""

import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import rig

HERE = Path(__file__).resolve().parent
SHIM_DIR = HERE / "mp"
STRACE = shutil.which("strace")

# The launcher, run by the test's CPython in its own process group, like `hanctl run`.
LAUNCH = r"""
import os, subprocess, sys
from hanctl import run
config, uart, heap, state, log, trace, shim = sys.argv[1:8]
run.prepare(state, config)
env = run.env(uart)
env["MICROPYPATH"] = shim + ":" + env["MICROPYPATH"]
env["HANPORT_AUDIT_LOG"] = log
argv = run.argv(heap)
if trace != "-":
    # %network: socket, connect, sendto, sendmsg, bind...; -A appends across restarts.
    argv = ["strace", "-f", "-qq", "-A", "--seccomp-bpf", "-e", "trace=%network",
            "-o", trace] + argv
while True:
    rc = subprocess.run(argv, cwd=state, env=env).returncode
    if rc != run.RESTART:
        sys.exit(rc if rc >= 0 else 128 - rc)
"""


class AuditDongle(rig.Dongle):
    """rig.Dongle with the socket shim and strace; .lookups(), .syscalls() read them."""

    def __init__(self, state, config, uart, heap=None, strace=True):
        super().__init__(state, config, uart, heap)
        self.audit_log = self.state.parent / (self.state.name + "-sockets.log")
        self.trace = self.state.parent / (self.state.name + "-strace.log")
        self.strace = bool(strace and STRACE)

    def start(self):
        import json

        self.audit_log.unlink(missing_ok=True)
        self.trace.unlink(missing_ok=True)
        if isinstance(self.config, dict):
            self.config_path.write_text(json.dumps(self.config))
        else:
            self.config_path.write_text(self.config)
        trace = str(self.trace) if self.strace else "-"
        cmd = [sys.executable, "-c", LAUNCH, str(self.config_path), self.uart, self.heap]
        cmd += [str(self.state), str(self.audit_log), trace, str(SHIM_DIR)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def lookups(self):
        """[(host, port, [(family, ip, port)])] of every getaddrinfo() the firmware made."""
        out = []
        if not self.audit_log.exists():
            return out
        for line in self.audit_log.read_text().splitlines():
            if not line.startswith("getaddrinfo "):
                continue
            _, host, port, _, *found = line.split(" ")
            out.append((host, int(port), [_sockaddr(a) for a in found if ":" in a]))
        return out

    def sockets_made(self):
        if not self.audit_log.exists():
            return []
        return [x for x in self.audit_log.read_text().splitlines() if x.startswith("socket ")]

    def syscalls(self):
        """[(call, family, address, port)] of each connect/sendto/sendmsg strace saw, the
        address being an IP, a unix socket's path, or None when the call named none."""
        out = []
        if not self.strace:
            return out
        for line in self.trace.read_text().splitlines():
            # strace pads the pid to five columns: "5031  connect(", "12345 connect(".
            m = re.match(r"\d+\s+(connect|sendto|sendmsg|sendmmsg)\((.*)", line)
            if not m:
                continue
            call, rest = m.groups()
            fam = re.search(r"sa_family=(AF_\w+)", rest)
            port = re.search(r"sin6?_port=htons\((\d+)\)", rest)
            ip = re.search(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', rest)
            path = re.search(r'sun_path="([^"]*)"', rest)
            out.append(
                (
                    call,
                    fam[1] if fam else None,
                    (ip[1] or ip[2]) if ip else (path[1] if path else None),
                    int(port[1]) if port else None,
                )
            )
        return out


def _sockaddr(text):
    """'2:0200223e7f000001...' (the shim's family:sockaddr hex) -> (family, ip, port)."""
    fam, raw = text.split(":", 1)
    b = bytes.fromhex(raw)
    if int(fam) == socket.AF_INET:
        return ("AF_INET", socket.inet_ntop(socket.AF_INET, b[4:8]), int.from_bytes(b[2:4], "big"))
    if int(fam) == socket.AF_INET6:
        ip = socket.inet_ntop(socket.AF_INET6, b[8:24])
        return ("AF_INET6", ip, int.from_bytes(b[2:4], "big"))
    return (fam, raw, None)


class Wire:
    """A TCP relay on 127.0.0.1 to a target port that keeps every byte each way, per
    connection: [(client->server bytes, server->client bytes)]. What a listener on the
    network between dongle and broker would read."""

    def __init__(self, target):
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()  # nothing listens there: the dongle sees a refusal
                continue
            up, down = bytearray(), bytearray()
            self.connections.append((up, down))
            for a, b, rec in ((client, upstream, up), (upstream, client, down)):
                threading.Thread(target=_pipe, args=(a, b, rec), daemon=True).start()

    def sent(self):
        """Every byte the dongle sent, all connections."""
        return b"".join(bytes(up) for up, _ in self.connections)

    def close(self):
        self.server.close()


def _pipe(a, b, record):
    try:
        while data := a.recv(65536):
            record += data
            b.sendall(data)
    except OSError:
        pass  # the other direction's thread shut the pair: nothing more to relay
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already shut by the other direction's thread
