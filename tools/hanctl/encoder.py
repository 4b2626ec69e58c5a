"""A small meter-side encoder for self-contained tests: A-XDR values, Data-Notifications,
HDLC frames (with segmentation), General Block Transfer, M-Bus telegrams and P1 telegrams.

Written from the standards, independently of firmware/ (bitwise CRCs, not the firmware's
tables), so a test built with it checks the decoder rather than mirroring it.
"""

import struct


def _crc16(data, poly, crc):
    # Bit by bit, reflected: the definition, not the firmware's table.
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc


def crc16_x25(data):
    return _crc16(data, 0x8408, 0xFFFF) ^ 0xFFFF


def crc16_arc(data):
    return _crc16(data, 0xA001, 0)


# -- A-XDR -------------------------------------------------------------------------------

_FIXED = {
    "bool": (0x03, ">?"),
    "i32": (0x05, ">i"),
    "u32": (0x06, ">I"),
    "i8": (0x0F, ">b"),
    "i16": (0x10, ">h"),
    "u8": (0x11, ">B"),
    "u16": (0x12, ">H"),
    "i64": (0x14, ">q"),
    "u64": (0x15, ">Q"),
    "enum": (0x16, ">B"),
    "f32": (0x17, ">f"),
    "f64": (0x18, ">d"),
}


def length(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def axdr(value):
    """Encode ("type", v): struct/array take a list of such pairs; obis takes "A.B.C.D.E.F";
    octets takes bytes; vstr takes str; datetime takes (y, mo, d, h, mi, s); null takes None.
    """
    kind, v = value
    if kind in _FIXED:
        tag, fmt = _FIXED[kind]
        return bytes([tag]) + struct.pack(fmt, v)
    if kind in ("struct", "array"):
        body = b"".join(axdr(x) for x in v)
        return bytes([0x02 if kind == "struct" else 0x01]) + length(len(v)) + body
    if kind == "obis":
        return b"\x09\x06" + bytes(int(x) for x in v.split("."))
    if kind == "octets":
        return b"\x09" + length(len(v)) + v
    if kind == "vstr":
        raw = v.encode()
        return b"\x0a" + length(len(raw)) + raw
    if kind == "datetime":
        return b"\x09\x0c" + date_time(*v)
    if kind == "null":
        return b"\x00"
    raise ValueError(kind)


def date_time(year, month, day, hour, minute, second):
    """COSEM date-time, 12 bytes: day of week, hundredths and deviation not specified."""
    return struct.pack(">HBBBBBBBhB", year, month, day, 0xFF, hour, minute, second, 0xFF, -32768, 0)


def register(obis, kind, value, scaler=None, unit=None):
    """An Aidon-style register: structure{obis, value[, structure{scaler, unit}]}."""
    items = [("obis", obis), (kind, value)]
    if scaler is not None:
        items.append(("struct", [("i8", scaler), ("enum", unit)]))
    return ("struct", items)


def notification(body, invoke=0x40000000, time=None, kaifa_tag=False):
    """Data-Notification APDU; time is (y, mo, d, h, mi, s) or None."""
    apdu = b"\x0f" + struct.pack(">I", invoke)
    if time is None:
        apdu += b"\x00"
    else:
        apdu += (b"\x09\x0c" if kaifa_tag else b"\x0c") + date_time(*time)
    return apdu + axdr(body)


LLC = b"\xe6\xe7\x00"


# -- HDLC --------------------------------------------------------------------------------


def hdlc(info, segmented=False, dst=b"\x41", src=b"\x08\x83", control=0x13):
    """One HDLC frame type 3 with HCS and FCS, flags on both ends."""
    header_len = 2 + len(dst) + len(src) + 1
    total = header_len + 2 + len(info) + 2  # format..FCS
    fmt = 0xA000 | (0x0800 if segmented else 0) | total
    header = struct.pack(">H", fmt) + dst + src + bytes([control])
    body = header + struct.pack("<H", crc16_x25(header)) + info
    return b"\x7e" + body + struct.pack("<H", crc16_x25(body)) + b"\x7e"


def cipher(apdu, key, auth_key=None, counter=1, title=b"HANPORT\x01"):
    """apdu as a meter that encrypts pushes it: general-glo-ciphering (0xDB), AES-128-GCM of
    DLMS security suite 0 (Green Book 9.2.7.2.4.2), the IV the system title and the
    invocation counter. With auth_key: security control 0x30, AAD = SC || AK and a 12-byte
    tag; without: 0x20, encryption only, no tag."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # through esptool

    sc = 0x30 if auth_key else 0x20
    ic = counter.to_bytes(4, "big")
    sealed = AESGCM(key).encrypt(title + ic, apdu, bytes([sc]) + auth_key if auth_key else b"")
    text, tag = sealed[:-16], sealed[-16:-4]
    body = bytes([sc]) + ic + text + (tag if auth_key else b"")
    return b"\xdb\x08" + title + length(len(body)) + body


def sealed_hdlc(frame, key, auth_key=None, counter=1, title=b"HANPORT\x01"):
    """frame, one hdlc() of LLC + an APDU, again with the APDU ciphered (cipher())."""
    i = 3
    addresses = []
    for _ in range(2):  # destination, source: extended while bit 0 is clear
        start = i
        while not frame[i] & 1:
            i += 1
        i += 1
        addresses.append(frame[start:i])
    info = frame[i + 3 : -3]  # after the control byte and HCS, before the FCS and flag
    if info[:3] != LLC:
        raise ValueError("not a frame of LLC + APDU")
    apdu = cipher(info[3:], key, auth_key, counter, title)
    return hdlc(LLC + apdu, dst=addresses[0], src=addresses[1], control=frame[i])


def hdlc_segments(apdu, size):
    """The LLC + APDU split over HDLC frames of at most `size` information bytes."""
    info = LLC + apdu
    parts = [info[i : i + size] for i in range(0, len(info), size)]
    return [hdlc(p, segmented=i < len(parts) - 1) for i, p in enumerate(parts)]


def gbt_blocks(apdu, size):
    """General Block Transfer APDUs (tag E0) carrying apdu in blocks of `size` bytes."""
    parts = [apdu[i : i + size] for i in range(0, len(apdu), size)]
    out = []
    for i, p in enumerate(parts):
        ctrl = 0x40 | (0x80 if i == len(parts) - 1 else 0)
        out.append(b"\xe0" + bytes([ctrl]) + struct.pack(">HH", i + 1, 0) + length(len(p)) + p)
    return out


# -- M-Bus -------------------------------------------------------------------------------


def mbus(payload, ci, c=0x53, a=0xFF, saps=b"\x01\x67"):
    """EN 13757-2 long frame carrying a DLMS transport segment."""
    data = bytes([c, a, ci]) + saps + payload
    return bytes([0x68, len(data), len(data), 0x68]) + data + bytes([sum(data) & 0xFF, 0x16])


# -- P1 ----------------------------------------------------------------------------------


def p1(ident, lines, crc="full"):
    """A P1 telegram; crc is "full" (4 digits), "short" (no leading zero) or None."""
    text = "/" + ident + "\r\n\r\n" + "".join(line + "\r\n" for line in lines) + "!"
    raw = text.encode()
    if crc is None:
        return raw + b"\r\n"
    value = crc16_arc(raw)
    digits = f"{value:04X}" if crc == "full" else f"{value:X}"
    return raw + digits.encode() + b"\r\n"


# Luxembourg's P1 ports (Smarty) send each telegram inside a general-glo-ciphering APDU, with
# the same authentication key in every meter (firmware/p1cipher.py has the sources).
LUXEMBOURG_AUTH_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def luxembourg(
    telegram, key, auth_key=LUXEMBOURG_AUTH_KEY, counter=1, title=b"SAG\x10\x00\x00\x00\x01"
):
    """A P1 telegram (bytes, "/" .. "\r\n") as a Luxembourg meter sends it: DB 08 <title>
    82 <length, 2 bytes> 30 <counter, 4> <ciphertext> <tag, 12>, AES-128-GCM with AAD 30 ||
    auth_key. The length always in its 3-byte A-XDR form, as the meters send it."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # through esptool

    ic = counter.to_bytes(4, "big")
    sealed = AESGCM(key).encrypt(title + ic, telegram, b"\x30" + auth_key)
    body = b"\x30" + ic + sealed[:-16] + sealed[-16:-4]
    return b"\xdb\x08" + title + b"\x82" + len(body).to_bytes(2, "big") + body


# -- Norwegian lists (NVE HAN interface), for the demo, the benchmark and the simulator ---

DEFAULT = {
    "time": (2024, 3, 5, 14, 0, 0),
    "p_import": 1234,  # W
    "p_export": 0,
    "q_import": 0,  # var
    "q_export": 472,
    "current": (5.1, 3.2, 1.7),  # A
    "voltage": (233.0, 233.4, 231.1),  # V
    "energy": (109552250, 0, 130480, 15319720),  # Wh: A+, A-, R+, R-
}


def _m(values):
    m = dict(DEFAULT)
    m.update(values or {})
    return m


def aidon(list_no, values=None):
    """Aidon 6534 three-phase List 1/2/3: OBIS-tagged registers with scaler and unit."""
    m = _m(values)
    regs = [register("1.0.1.7.0.255", "u32", m["p_import"], 0, 27)]
    if list_no >= 2:
        ids = [
            ("struct", [("obis", "1.1.0.2.129.255"), ("vstr", "AIDON_V0001")]),
            ("struct", [("obis", "0.0.96.1.0.255"), ("vstr", "7359992890497997")]),
            ("struct", [("obis", "0.0.96.1.7.255"), ("vstr", "6534")]),
        ]
        regs = (
            ids
            + regs
            + [
                register("1.0.2.7.0.255", "u32", m["p_export"], 0, 27),
                register("1.0.3.7.0.255", "u32", m["q_import"], 0, 29),
                register("1.0.4.7.0.255", "u32", m["q_export"], 0, 29),
            ]
        )
        for i, c in enumerate((31, 51, 71)):
            regs.append(register(f"1.0.{c}.7.0.255", "i16", round(m["current"][i] * 10), -1, 33))
        for i, c in enumerate((32, 52, 72)):
            regs.append(register(f"1.0.{c}.7.0.255", "u16", round(m["voltage"][i] * 10), -1, 35))
    if list_no == 3:
        regs.append(("struct", [("obis", "0.0.1.0.0.255"), ("datetime", m["time"])]))
        for c, unit, wh in zip((1, 2, 3, 4), (30, 30, 32, 32), m["energy"], strict=True):
            regs.append(register(f"1.0.{c}.8.0.255", "u32", wh // 10, 1, unit))
    return hdlc(LLC + notification(("array", regs)))


def kaifa(list_no, values=None):
    """Kaifa MA304H3E three-phase List 1/2/3: values by position, no OBIS codes."""
    m = _m(values)
    items = [("u32", m["p_import"])]
    if list_no >= 2:
        items = [
            ("octets", b"KFM_001"),
            ("octets", b"6970631401753985"),
            ("octets", b"MA304H3E"),
            ("u32", m["p_import"]),
            ("u32", m["p_export"]),
            ("u32", m["q_import"]),
            ("u32", m["q_export"]),
        ]
        items += [("u32", round(c * 1000)) for c in m["current"]]
        items += [("u32", round(v * 10)) for v in m["voltage"]]
    if list_no == 3:
        items.append(("octets", date_time(*m["time"])))
        items += [("u32", wh) for wh in m["energy"]]
    apdu = notification(("struct", items), time=m["time"], kaifa_tag=True)
    return hdlc(LLC + apdu, dst=b"\x01", src=b"\x02\x01", control=0x10)


def kamstrup(list_no, values=None):
    """Kamstrup 6841131 three-phase List 1 (power) or 2; 3 is List 2 with the energy."""
    m = _m(values)
    items = [("vstr", "Kamstrup_V0001")]
    regs = [("1.1.1.7.0.255", m["p_import"])]
    if list_no >= 2:
        items += [
            ("obis", "1.1.0.0.5.255"),
            ("vstr", "5706567202753025"),
            ("obis", "1.1.96.1.1.255"),
            ("vstr", "6841131BN243101040"),
        ]
        regs += [
            ("1.1.2.7.0.255", m["p_export"]),
            ("1.1.3.7.0.255", m["q_import"]),
            ("1.1.4.7.0.255", m["q_export"]),
        ]
        currents = zip((31, 51, 71), m["current"], strict=True)
        voltages = zip((32, 52, 72), m["voltage"], strict=True)
        regs += [(f"1.1.{c}.7.0.255", round(i * 100)) for c, i in currents]
        regs += [(f"1.1.{c}.7.0.255", round(v)) for c, v in voltages]
    for code, value in regs:
        items += [("obis", code), ("u32", value)]
    if list_no == 3:
        items += [("obis", "0.1.1.0.0.255"), ("datetime", m["time"])]
        for c, wh in zip((1, 2, 3, 4), m["energy"], strict=True):
            items += [("obis", f"1.1.{c}.8.0.255"), ("u32", wh // 10)]
    apdu = notification(("struct", items), invoke=0, time=m["time"])
    return hdlc(LLC + apdu, dst=b"\x2b", src=b"\x21")


METERS = {"aidon": aidon, "kaifa": kaifa, "kamstrup": kamstrup}


def sample_frames():
    """[(label, frame)]: List 1, 2 and 3 of each Norwegian meter type."""
    out = []
    for name, make in METERS.items():
        for list_no in (1, 2, 3):
            out.append((f"{name}_sample#{list_no}", make(list_no)))
    return out
