"""`hanctl bench --whole-process`, ciphered frames: one `hanctl decode --key` process against
one CPython process of dlms-cosem (PyPI `dlms-cosem`, which decrypts with `cryptography`),
each reading the same raw capture of ciphered pushes and writing one JSON line a push.

The pushes: the keyed captures of ../shared/vectors (Landis+Gyr E450 AT over HDLC, SC 0x30
with its auth key; Kaifa MA309 PL over M-Bus, SC 0x21, no auth key) and the encoder's List 3
of Aidon, Kaifa and Kamstrup ciphered with SC 0x30 (hanctl's encoder, `cryptography`), each
repeated. One key per process, so each key's capture is timed apart and the times added.

The dlms-cosem side, as a user of it would write the loop: frames cut by their length fields
(dlms-cosem reads HDLC frames, not a stream, and has no M-Bus); the HDLC frame parsed by
dlms-cosem, its HCS and FCS checked (it refuses the Landis+Gyr frames' 2-byte destination
address: their information field is cut by hand); the general-glo-ciphering APDU, its
decryption (to_plain_apdu(), with `cryptography`) and the Data-Notification by dlms-cosem,
but where it cannot: its decrypt() needs a tag, so SC 0x21 is deciphered by `cryptography`'s
AES-CTR from counter block 2, as GCM does, and its Data-Notification does not take Kaifa's
date-time as a tagged octet string (09 0C), cut by hand; the body by its DlmsDataParser,
printed with json.dumps. Both outputs are checked to hold the same pushes and values: every
number of each hanctl reading (its digits, times a power of ten: 233.1 is 2331, 233 may be
2330) is an integer of the same push's body in dlms-cosem's parse. Wall time is the best of
a few runs, CPU time their least (bench_process.measure()).
"""

import json
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from . import bench_process, encoder, runtime, simulate

TARGET = 5.0  # >= 5x dlms-cosem's pushes per second over the whole process

DLMS_COSEM = r"""
import json, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from dlms_cosem.dlms_data import DlmsDataParser
from dlms_cosem.hdlc.exceptions import HdlcParsingError
from dlms_cosem.hdlc.frames import UnnumberedInformationFrame
from dlms_cosem.protocol.xdlms import DataNotification, GeneralGlobalCipher

key = bytes.fromhex(sys.argv[1])
auth_key = bytes.fromhex(sys.argv[2]) if len(sys.argv) > 2 else None

def plain(v):
    if isinstance(v, list):
        return [plain(x) for x in v]
    if hasattr(v, "value"):  # a DlmsData: structures and arrays hold more of them
        return plain(v.value)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (int, str)) or v is None:
        return v
    return str(v)

def push(apdu):
    ggc = GeneralGlobalCipher.from_bytes(apdu)
    if ggc.security_control.authenticated:
        text = ggc.to_plain_apdu(key, auth_key)
    else:  # dlms-cosem's decrypt() needs a tag: GCM's counter mode from block 2
        iv = ggc.system_title + ggc.invocation_counter.to_bytes(4, "big") + b"\x00\x00\x00\x02"
        d = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
        text = d.update(ggc.ciphered_text) + d.finalize()
    if text[5] == 0x09:  # Kaifa's date-time, a tagged octet string (09 0C): not taken
        body = text[7 + text[6] :]
    else:
        body = DataNotification.from_bytes(text).body
    body = DlmsDataParser().parse(body)
    print(json.dumps(plain(body)))

data = sys.stdin.buffer.read()
pos, mbus = 0, b""
while pos < len(data):
    if data[pos] == 0x7E:
        n = ((data[pos + 1] & 0x07) << 8 | data[pos + 2]) + 2
        raw = data[pos : pos + n]
        try:
            info = bytes(UnnumberedInformationFrame.from_bytes(raw).information)
        except HdlcParsingError:  # addresses it does not take (L+G's 2-byte one): by hand
            i = 3
            for _ in range(2):
                while not raw[i] & 1:
                    i += 1
                i += 1
            info = raw[i + 3 : -3]  # after control and HCS, before FCS and flag
        push(info[3:])  # after the LLC header E6 E7 00
        pos += n
    elif data[pos] == 0x68:  # 68 L L 68 C A CI STSAP DTSAP ... CS 16
        n = data[pos + 1] + 6
        mbus += data[pos + 9 : pos + n - 2]
        if data[pos + 6] & 0x10:  # the push's last telegram
            push(mbus)
            mbus = b""
        pos += n
    else:
        pos += 1
"""


def has_dlms_cosem():
    argv = [sys.executable, "-c", "import dlms_cosem, cryptography"]
    return subprocess.run(argv, capture_output=True).returncode == 0


def groups(repeat):
    """[(label, key, auth key or None, capture bytes, pushes)]: one a key."""
    from .demo import vectors_dir

    out = []
    found = {}
    for path in sorted(vectors_dir().glob("*/*.json")):
        for f in json.loads(path.read_text())["frames"]:
            if f.get("key_hex") and f.get("plaintext_apdu_hex") and not f.get("corrupt"):
                k = (f["key_hex"], f.get("auth_key_hex"), f["framing"])
                found.setdefault(k, []).append(bytes.fromhex(f["hex"]))
    for (key, ak, framing), frames in found.items():
        label = f"shared vectors, {framing.upper()}, {len(frames)} push(es), "
        label += "SC 0x30" if ak else "no auth key"
        out.append((label, bytes.fromhex(key), ak and bytes.fromhex(ak), frames * repeat))
    key, ak = simulate.EXAMPLE_KEYS
    plain = [encoder.METERS[m](3) for m in sorted(encoder.METERS)]
    sealed = [
        encoder.sealed_hdlc(frame, key, ak, counter=1 + i * len(plain) + j)
        for i in range(repeat)
        for j, frame in enumerate(plain)
    ]
    out.append(("encoder List 3 (Aidon, Kaifa, Kamstrup), HDLC, SC 0x30", key, ak, sealed))
    return [(label, k, a, b"".join(fs), len(fs)) for label, k, a, fs in out]


def _digits(v):
    """The integer a reading's number was scaled from: its digits (233.1 -> 2331)."""
    d = Decimal(str(v)).as_tuple()
    return int("".join(map(str, d.digits))) * (-1 if d.sign else 1) * 10 ** max(d.exponent, 0)


def _ints(v, out):
    if isinstance(v, list):
        for x in v:
            _ints(x, out)
    elif isinstance(v, int) and not isinstance(v, bool):
        out.add(v)
    return out


def same_values(ours, theirs):
    """None when every number of each hanctl reading is an integer of the same push in
    dlms-cosem's parse (and the pushes match), else what differs."""
    if len(ours) != len(theirs):
        return f"{len(ours)} readings against {len(theirs)} pushes"
    for i, (reading, body) in enumerate(zip(ours, theirs, strict=True)):
        ints = _ints(body, set())
        for name, v in reading.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if not any(_digits(v) * 10**k in ints for k in range(7)):  # 233 from 2330, -1
                return f"push {i}: {name} = {v} is no integer of dlms-cosem's body"
    return None


def report(repeat=100, runs=3):
    """Markdown: both processes over each key's capture, the times added, the check."""
    head = ["# Ciphered pushes: `hanctl decode --key` against dlms-cosem", ""]
    if not has_dlms_cosem():
        return "\n".join(head + ["Not run: dlms-cosem is not installed (pip install dlms-cosem)."])
    rows = []
    total = [0.0, 0.0, 0.0, 0.0]  # wall ours, cpu ours, wall theirs, cpu theirs
    pushes = 0
    runtime.compile_firmware()
    with tempfile.TemporaryDirectory() as tmp:
        for label, key, ak, data, n in groups(repeat):
            capture = Path(tmp) / "capture.bin"
            capture.write_bytes(data)
            out = Path(tmp) / "out.jsonl"
            keys = ["--key", key.hex()] + (["--auth-key", ak.hex()] if ak else [])
            decode = [sys.executable, "-m", "hanctl", "decode", "--heap", bench_process.HEAP]
            ours = bench_process.measure(decode + keys + ["-"], capture, out, runs)
            mine = [json.loads(x) for x in out.read_text().splitlines()]
            theirs_argv = [sys.executable, "-c", DLMS_COSEM, key.hex()] + ([ak.hex()] if ak else [])
            theirs = bench_process.measure(theirs_argv, capture, out, runs)
            bodies = [json.loads(x) for x in out.read_text().splitlines()]
            diff = same_values(mine, bodies)
            if diff:
                raise SystemExit(f"{label}: hanctl and dlms-cosem disagree: {diff}")
            for i, x in enumerate((ours[0], ours[1], theirs[0], theirs[1])):
                total[i] += x
            pushes += n
            rows.append(
                f"| {label} | {n} | {ours[0] * 1e6 / n:.0f} | {ours[1] * 1e6 / n:.0f} "
                f"| {theirs[0] * 1e6 / n:.0f} | {theirs[1] * 1e6 / n:.0f} |"
            )
    wall, cpu = total[2] / total[0], total[3] / total[1]
    lines = head + [
        f"- `hanctl decode --key` under {runtime.describe_image()}, -X heapsize="
        f"{bench_process.HEAP}; dlms-cosem and `cryptography` under CPython "
        f"{sys.version.split()[0]}; best wall and least CPU of {runs} runs",
        "- every number of every hanctl reading is an integer of the same push's body as "
        "dlms-cosem parses it (checked on each run)",
        "",
        "| pushes | n | hanctl µs/push (wall) | hanctl CPU µs/push | dlms-cosem µs/push (wall) "
        "| dlms-cosem CPU µs/push |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"All {pushes} pushes: `hanctl decode --key` is {wall:.1f}x as fast as dlms-cosem by wall "
        f"time, {cpu:.1f}x by CPU time (target >= {TARGET:.0f}x).",
    ]
    return "\n".join(lines)
