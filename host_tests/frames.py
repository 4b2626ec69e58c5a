"""Frames the tests share, made by encoder.py, and what they decode to: an Aidon List 3 and
its variants, a P1 telegram, quirk lists, and CASES, the streams with the edge cases a HAN
line produces (test_stream.py runs them on both runtimes; the fuzz seeds from them)."""

from decimal import Decimal

from hanctl import encoder as enc

NOW = (2024, 3, 5, 14, 0, 0)


def aidon_list3(power=1234, current=-12, energy=10955225):
    body = (
        "array",
        [
            ("struct", [("obis", "1.1.0.2.129.255"), ("vstr", "AIDON_V0001")]),
            ("struct", [("obis", "0.0.96.1.0.255"), ("vstr", "7359992890497997")]),
            ("struct", [("obis", "0.0.96.1.7.255"), ("vstr", "6534")]),
            enc.register("1.0.1.7.0.255", "u32", power, 0, 27),
            enc.register("1.0.31.7.0.255", "i16", current, -1, 33),
            enc.register("1.0.32.7.0.255", "u16", 2331, -1, 35),
            ("struct", [("obis", "0.0.1.0.0.255"), ("datetime", NOW)]),
            enc.register("1.0.1.8.0.255", "u32", energy, 1, 30),
            enc.register("1.0.91.7.0.255", "i16", 87, -2, 33),  # not in the table
        ],
    )
    return enc.notification(body)


LIST3 = aidon_list3()
FRAME = enc.hdlc(enc.LLC + LIST3)
OTHER = enc.hdlc(enc.LLC + aidon_list3(power=99))
WANT = {
    "meter_id": "7359992890497997",
    "meter_model": "6534",
    "meter_manufacturer": "Aidon",
    "list_id": "AIDON_V0001",
    "meter_time": "2024-03-05T14:00:00",
    "active_power_import": 1234,
    "current_l1": Decimal("-1.2"),
    "voltage_l1": Decimal("233.1"),
    "active_energy_import": Decimal("109552.25"),
    "1-0:91.7.0": Decimal("0.87"),
}


def _entry(class_id, code):
    """One push_object_list entry: structure{class id, logical name, attribute, index}."""
    return ("struct", [("u16", class_id), ("obis", code), ("i8", 2), ("u16", 0)])


def _object_list_push(entries, values):
    """A CASES entry: one HDLC frame of a push that describes itself (L&G E450)."""
    body = ("struct", [("array", entries), *values])
    return ("hdlc", [enc.hdlc(enc.LLC + enc.notification(body))])


def _cut(frame, k):
    return frame[:k]


def _deep(levels):
    body = ("u8", 1)
    for _ in range(levels):
        body = ("struct", [body])
    return enc.notification(body)


P1_LINES = [
    "0-0:1.0.0(240305140000W)",
    "0-0:96.1.1(4B384547303034303436333935353037)",
    "1-0:1.8.1(000123.456*kWh)",
    "1-0:1.7.0(01.193*kW)",
    "1-0:32.7.0(230.1*V)",
    "1-0:31.7.0(005*A)",
    "0-0:96.7.21(00004)",
]
P1_WANT = {
    "meter_id": "K8EG004046395507",
    "meter_model": "ISK5\\2M550T-1012",
    "meter_time": "2024-03-05T14:00:00",
    "active_energy_import_t1": Decimal("123.456"),
    "active_power_import": 1193,
    "voltage_l1": Decimal("230.1"),
    "current_l1": 5,
    "0-0:96.7.21": 4,
}
P1 = enc.p1("ISK5\\2M550T-1012", P1_LINES)


def P1_SEALED(ident):  # noqa: N802 - a frame maker, named like the frames
    """P1's lines under the identification line `ident` (bytes, '/' first), CRC made."""
    raw = ident + P1[P1.index(b"\r\n") : P1.index(b"!") + 1]
    return raw + b"%04X\r\n" % enc.crc16_arc(raw)


FLOAT_LIST = enc.notification(
    (
        "struct",
        [
            ("obis", "1.0.14.7.0.255"),
            ("f32", 49.5),
            ("obis", "1.0.13.7.0.255"),
            ("i8", 1),
            ("obis", "1.0.2.8.0.255"),
            ("u64", 12345678901234),
            ("obis", "1.0.1.7.0.255"),
            ("i64", -5),
            ("obis", "1.0.96.3.10.255"),
            ("bool", True),
        ],
    )
)
KAIFA_1P = enc.notification(
    (
        "struct",
        [
            ("octets", b"KFM_001"),
            ("octets", b"6970631401753985"),
            ("octets", b"MA105H2E"),
            ("u32", 512),
            ("u32", 0),
            ("u32", 0),
            ("u32", 141),
            ("u32", 2251),
            ("u32", 2312),
            ("octets", enc.date_time(*NOW)),
            ("u32", 112727),
            ("u32", 0),
            ("u32", 101),
            ("u32", 13220),
        ],
    ),
    time=NOW,
    kaifa_tag=True,
)
KAMSTRUP_1P = enc.notification(
    (
        "struct",
        [
            ("vstr", "Kamstrup_V0001"),
            ("obis", "1.1.0.0.5.255"),
            ("vstr", "5706567274389702"),
            ("obis", "1.1.96.1.1.255"),
            ("vstr", "6861111BN242101040"),
            ("obis", "1.1.31.7.0.255"),
            ("u32", 583),
            ("null", None),
            ("obis", "1.1.1.8.0.255"),
            ("u32", 1232787),
        ],
    ),
    time=NOW,
)

# Iskraemeco's 15-minute list (Elektro Ljubljana): serial, an unsigned8 no source names,
# then active energy import and export in Wh; no OBIS code, no maker named.
ISKRAEMECO_15MIN = enc.notification(
    ("struct", [("octets", b"84605887"), ("u8", 0), ("u32", 7924641), ("u32", 250)]),
    time=NOW,
)

# Iskraemeco AM550 of Kaernten Netz (Austria), as amsreader-firmware's log printed it after
# decrypting (its issue 787; the vectors hold this meter's frames ciphered, without a key):
# 0-6:25.9.0 and the meter number, then ten values with no code: time, date, A+, A-, R+, R-
# (Wh, varh), P+, P- (W) and two empty octet strings.
ISKRAEMECO_AT = enc.notification(
    ("struct", [
        ("obis", "0.6.25.9.0.255"), ("octets", b"1121378381199"),
        ("octets", bytes([21, 11, 20, 0])), ("octets", bytes([0x07, 0xE8, 5, 7, 2])),
        ("u32", 56133), ("u32", 420837), ("u32", 1455864), ("u32", 2293936),
        ("u32", 0), ("u32", 10), ("octets", b""), ("octets", b""),
    ]),
    invoke=0x0003D788,
    time=(2024, 5, 7, 21, 11, 20),
)  # fmt: skip

# name -> (framing, chunks): each case is one stream fed to a fresh decoder, then end()
CASES = {
    "one": ("hdlc", [FRAME]),
    "shared_flag": ("hdlc", [FRAME + OTHER[1:]]),
    "idle_flags": ("hdlc", [b"\x7e\x7e\x7e" + FRAME + b"\x7e\x7e" + OTHER]),
    "byte_by_byte": ("hdlc", [bytes([b]) for b in FRAME + OTHER[1:]]),
    "noise_between": ("hdlc", [b"\x00\xff\x13\x7e\x12\x68\x01" + FRAME + b"\xaa\x55" + OTHER]),
    "cut_then_good": ("hdlc", [_cut(FRAME, 60) + OTHER]),
    "cut_at_end": ("hdlc", [FRAME + _cut(OTHER, 40)]),
    "bad_fcs": ("hdlc", [FRAME[:-3] + bytes([FRAME[-3] ^ 1]) + FRAME[-2:] + OTHER]),
    "bad_hcs": ("hdlc", [FRAME[:8] + bytes([FRAME[8] ^ 0x40]) + FRAME[9:] + OTHER]),
    "oversize": ("hdlc", [b"\x7e\xa7\xff\x41\x08\x83\x13" + bytes(300) + OTHER]),
    "deep": ("hdlc", [enc.hdlc(enc.LLC + _deep(20))]),
    "segmented": ("hdlc", enc.hdlc_segments(LIST3, 40)),
    "segment_lost": ("hdlc", enc.hdlc_segments(LIST3, 40)[1:] + [FRAME]),
    "gbt": ("hdlc", [enc.hdlc(enc.LLC + b) for b in enc.gbt_blocks(LIST3, 50)]),
    "mbus": ("mbus", [enc.mbus(LIST3[:60], 0x00), enc.mbus(LIST3[60:], 0x11)]),
    "apdu_in_llc": ("llc", [enc.LLC + LIST3]),
    "p1": ("p1", [P1]),
    "p1_short_crc": ("p1", [enc.p1("KFM5KAIFA-METER", ["1-0:1.7.0(00.100*kW)"], crc="short")]),
    "p1_no_crc": ("p1", [enc.p1("ISk5\\2MT382-1000", ["1-0:1.7.0(0001.01*kW)"], crc=None)]),
    "p1_bad_crc": ("p1", [P1.replace(b"000123.456", b"000123.457")]),
    # One bit flipped on the line: the first ")" (0x29) read as "!" (0x21) mid-line.
    "p1_bang_in_line": ("p1", [P1.replace(b")", b"!", 1)]),
    "p1_byte_by_byte": ("p1", [bytes([b]) for b in P1]),
    # A capture that ends right after the CRC digits, or after their CR: still a telegram.
    "p1_no_crlf": ("p1", [P1[:-2]]),
    "p1_no_lf": ("p1", [P1[:-1]]),
    "p1_cut_in_crc": ("p1", [P1[:-4]]),
    "p1_no_crlf_bad_crc": ("p1", [P1.replace(b"000123.456", b"000123.457")[:-2]]),
    # Identification lines with bytes a maker put there, the CRC holding: taken.
    "p1_header_bytes": ("p1", [P1_SEALED(b"/ISK5\xab2M550T\x02-1012")]),
    "p1_then_hdlc": ("hdlc", [P1 + FRAME]),
    "types": ("hdlc", [enc.hdlc(enc.LLC + FLOAT_LIST)]),
    "kaifa_1phase_list3": ("hdlc", [enc.hdlc(enc.LLC + KAIFA_1P, dst=b"\x01", src=b"\x02\x01")]),
    "kamstrup_1phase": ("hdlc", [enc.hdlc(enc.LLC + KAMSTRUP_1P, dst=b"\x2b", src=b"\x21")]),
    "iskraemeco_15min": ("hdlc", [enc.hdlc(enc.LLC + ISKRAEMECO_15MIN)]),
    "iskraemeco_at": ("hdlc", [enc.hdlc(enc.LLC + ISKRAEMECO_AT)]),
    "ciphered": ("hdlc", [enc.hdlc(enc.LLC + b"\xdb\x08KAME\x01\x02\x03\x04\x81\x00" + bytes(20))]),
    # Found by review and fuzzing: each once raised out of feed() or misread a frame.
    "model_not_text": (
        "hdlc",
        [
            bytes.fromhex(
                "7ea03f410883131081e6e7000f400000000002050a0e4b616d73747275705f563030303109060101"
                "600101ff060068632b090601011f0700ff06000002477b847e"
            )
            + FRAME
        ],
    ),
    "infoless_segments": (
        "hdlc",
        [
            bytes.fromhex("7ea81341088313e9b7e6e7000f400000000000067e"),
            bytes.fromhex("7ea8084108831345447e") * 1100,
            FRAME,
        ],
    ),
    "one_text_value": (
        "hdlc",
        [enc.hdlc(enc.LLC + enc.notification(("struct", [("vstr", "HELLO")])))],
    ),
    "two_cut_frames": (
        "hdlc",
        [
            bytes.fromhex(
                "7ea0b641088313215ae6e7000f400000000002027ea022410883132449e6e7000f40000000000202"
            )
        ],
    ),
    "short_object_list": ("apdu", [bytes.fromhex("0f4000000000020001000200")]),
    "empty_transfer": ("hdlc", [enc.hdlc(enc.LLC + b"\xe0\xc0\x00\x01\x00\x00\x00")]),
    "frame_then_zero": ("hdlc", [FRAME + b"\x00"]),
    # (after an identification line: a '/' inside one ends it as noise)
    "slashes": ("p1", [b"/KFM5\r\n\r\n" + b"/" * 2036 + b"\x00" + P1]),
    # '/' not followed by a maker's letter starts no telegram (host_tests/stress/fuzz: these cost a
    # CRC of up to 2 KB each when every '/' was read to the next '!').
    "bare_slashes": ("p1", [b"/" * 1336 + P1]),
    # A telegram cut mid-line, the next whole one right behind it (its '/' mid-line) or
    # after a line end: the cut one reads on to the whole one's '!' and fails its CRC; the
    # CRC run backwards from there finds where the whole one starts.
    "p1_cut_midline": ("p1", [P1[:120] + P1]),
    "p1_cut_at_line": ("p1", [P1[: P1.index(b"\r\n", 60) + 2] + P1]),
    # Cut right after its '!': the next telegram's '/' where the CRC digits should be.
    "p1_cut_at_bang": ("p1", [P1[: P1.index(b"!") + 1] + P1]),
    # Five digits and no CR: no CRC-16, and nothing inside can hold (once an IndexError).
    "p1_five_digits": ("p1", [P1[: P1.index(b"!") + 1] + b"12345\n" + P1]),
    # Nested identification lines, each read to the same '!': the backward CRC finds none.
    "p1_nested_lines": ("p1", [b"x/ABC5\r\n" * 250 + b"!0000\r\n" + P1]),
    "three_byte_address": ("hdlc", [enc.hdlc(enc.LLC + LIST3, src=b"\x00\x02\x83") + OTHER]),
    "object_list_odd_name": _object_list_push(
        [
            _entry(40, "0.8.25.9.0.255"),  # this list (attr 2)
            _entry(40, "0.8.25.9.0.255"),  # the push's name
            _entry(1, "0.0.96.1.0.255"),
            _entry(3, "1.0.1.8.0.101"),  # F 101: no OBIS shape
            _entry(3, "1.0.1.7.0.255"),
        ],
        [("obis", "0.8.25.9.0.255"), ("vstr", "12345678"), ("u32", 999), ("u32", 1234)],
    ),
    # An L&G E450 push with its M-Bus channels' ids (channel 2 with none): each keeps its
    # code, and meter_id is the meter's own (channel 0), whatever comes after it.
    "object_list_channels": _object_list_push(
        [
            _entry(40, "0.8.25.9.0.255"),
            _entry(40, "0.8.25.9.0.255"),
            _entry(1, "0.0.96.1.0.255"),
            _entry(1, "0.1.96.1.0.255"),
            _entry(1, "0.2.96.1.0.255"),
            _entry(3, "1.0.1.7.0.255"),
        ],
        [
            ("obis", "0.8.25.9.0.255"),
            ("octets", b"63326413"),
            ("octets", b"12345678"),
            ("octets", b""),
            ("u32", 362),
        ],
    ),
    "float32": (
        "hdlc",
        [
            enc.hdlc(
                enc.LLC + enc.notification(("struct", [("obis", "1.0.14.7.0.255"), ("f32", 49.99)]))
            )
        ],
    ),
}
