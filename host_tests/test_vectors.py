"""Every frame of the shared real-meter captures, through the firmware decoder on the
MicroPython unix port and on CPython: values equal to the oracle's, corrupt frames rejected
with the right kind, the rest decoded or rejected for a stated reason."""

import json
from decimal import Decimal

import pytest

import vectors
from mp import RUNTIMES, run_cases

MISSING = vectors.missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
CASES = vectors.load_cases() if MISSING is None else []

# Frames that are neither corrupt nor oracle-decoded and that hanport rejects, and why.
# (Every other frame of that kind must decode to one reading, or be "encrypted".)
_LATER_PART = "a later part of a split push whose first part is not in this case"
OUTCOMES = {
    "hdlc/iskraemeco_hr_amsreader.json#0": ("incomplete", "first HDLC segment only"),
    "hdlc/iskraemeco_hr_amsreader.json#1": (
        "malformed",
        "two frames merged by the reporter: type byte 0x9F exists in no A-XDR type",
    ),
    "hdlc/kaifa_at_amsreader.json#0": ("encrypted", "plaintext logged behind its GCM header"),
    "hdlc/kamstrup_dk_amsreader.json#1": ("encrypted", "decrypted in place, header kept"),
    "hdlc/landisgyr_at_amsreader.json#1": ("segment", _LATER_PART),
    "hdlc/landisgyr_ch_amsreader.json#0": ("incomplete", "GBT block 1 of 3 alone"),
    "hdlc/landisgyr_ch_amsreader.json#1": ("segment", _LATER_PART),
    "hdlc/landisgyr_ch_amsreader.json#4": ("incomplete", "GBT block 1, last block not captured"),
    "hdlc/landisgyr_ch_amsreader.json#5": ("segment", _LATER_PART),
    "mbus/kaifa_at_amsreader.json#3": ("segment", _LATER_PART),
}

KNOWN_LIST_IDS = ("AIDON", "Kamstrup", "KFM")

# Where hanport knowingly differs from the oracle, the corrected values and why.
# kamstrup.py: Swedish Kamstrup meters count energy in Wh; amshan applies Norway's 10 Wh.
CORRECTIONS = {
    "hdlc/kamstrup_se_amsreader.json#1": {
        "active_energy_import": Decimal("32014.158"),
        "active_energy_export": Decimal(0),
        "reactive_energy_import": Decimal("5796.235"),
        "reactive_energy_export": Decimal("1073.187"),
    },
}


@pytest.fixture(scope="module", params=RUNTIMES)
def results(request):
    lines = [c.line() for c in CASES]
    lines += [_plaintext_line(c) for c in CASES if c.frame.get("plaintext_apdu_hex")]
    return run_cases(lines, request.param)


def _plaintext_line(case):
    return f"{case.id}:plain apdu {case.frame['plaintext_apdu_hex']}"


def _readings(out):
    return [json.loads(rest, parse_float=Decimal) for kind, rest in out if kind == "R"]


def _errors(out):
    # Noise (bytes outside any frame, like the Easymeter's lines after "!") is counted and
    # reported, but does not fail a frame.
    return [rest.split(" ")[0] for kind, rest in out if kind == "E" and rest[:6] != "noise "]


def _one(out, kind):
    found = [rest for k, rest in out if k == kind]
    assert len(found) == 1, out
    return found[0]


def _compare(ours, expected):
    wrong = {}
    for name, want in expected.items():
        got = ours.get(name)
        if isinstance(want, Decimal):
            ok = isinstance(got, (int, Decimal)) and Decimal(got) == want
        else:
            ok = got == want
        if not ok:
            wrong[name] = (got, want)
    return wrong


def _by(case):
    return (case.frame.get("expected_by") or "").split(" ")[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_frame(case, results):
    out = results.get(case.id, [])
    frame = case.frame
    readings, errors = _readings(out), _errors(out)
    if frame.get("corrupt"):
        kinds = vectors.corrupt_kind(frame)
        if kinds == ("noise",):
            errors = [rest.split(" ")[0] for kind, rest in out if kind == "E"]
        assert errors and errors[0] in kinds, out
        assert not readings, "a frame that fails its link check produced a reading"
        return
    oracle = _by(case)
    if oracle == "amshan":
        assert errors == [] and len(readings) == 1, out
        want = vectors.amshan_expected(frame["expected"])
        want.update(CORRECTIONS.get(case.id, {}))
        if not readings[0].get("list_id", "").startswith(KNOWN_LIST_IDS):
            # amshan infers the maker from the list's layout, which the L&G E350 (list id
            # EMBRIQ_V1_1) and the Aidon share; hanport names it only from a list id.
            want.pop("meter_manufacturer", None)
        assert _compare(readings[0], want) == {}
        # And no field the oracle did not find: a mislabelled register would show here.
        extra = set(readings[0]) - set(want) - {"meter_manufacturer"}
        assert {k for k in extra if ":" not in k} == set(), extra
    elif oracle == "dsmr-parser":
        assert errors == [] and len(readings) == 1, out
        want = vectors.dsmr_expected(frame["expected"], frame["text"])
        assert _compare(readings[0], want) == {}  # (each dsmr-parser spec names only some)
    elif oracle == "dlms-cosem" and not frame.get("encrypted"):
        assert errors == [] and len(readings) == 1, out
        _check_cosem(out, frame["expected"])
    elif case.id in OUTCOMES:
        assert errors == [OUTCOMES[case.id][0]] and not readings, out
    elif frame.get("encrypted"):
        assert errors == ["encrypted"] and not readings, out
    else:
        assert errors == [] and len(readings) == 1, out


def _check_cosem(out, expected):
    tree = json.loads(_one(out, "T"))
    assert vectors.cosem_tree(tree) == expected["body"]
    if expected.get("datetime"):
        assert _one(out, "N") == expected["datetime"][:19]


PLAIN = [c for c in CASES if c.frame.get("plaintext_apdu_hex")]


@pytest.mark.parametrize("case", PLAIN, ids=[c.id for c in PLAIN])
def test_decrypted_payload(case, results):
    """Ciphered pushes whose key was published: the decrypted APDU decodes to the
    oracle's structure (decryption itself is not the decoder's job)."""
    out = results.get(case.id + ":plain", [])
    assert _errors(out) == [] and len(_readings(out)) == 1, out
    _check_cosem(out, case.frame["expected"])


# -- Iskraemeco's positional lists (firmware/iskraemeco.py) --------------------------------
# Restated here from the captures, not imported: for each list, the canonical field of each
# position of dlms-cosem's body (None: not read) and its decimal exponent. Tariff registers
# add up to their totals and per-phase powers to the whole, which is how the captures
# confirm the positions amsreader-firmware gives.
_P = ["active_power_import", "active_power_export", "reactive_power_import",
      "reactive_power_export"]  # fmt: skip
_U = [("voltage_l1", -1), ("voltage_l2", -1), ("voltage_l3", -1)]
_I = [("current_l1", -2), ("current_l2", -2), ("current_l3", -2)]
_PIN = ["active_power_import_l1", "active_power_import_l2", "active_power_import_l3"]
_POUT = ["active_power_export_l1", "active_power_export_l2", "active_power_export_l3"]
_EIN = [("active_energy_import", -3), ("active_energy_import_t1", -3),
        ("active_energy_import_t2", -3)]  # fmt: skip
_EOUT = [("active_energy_export", -3), ("active_energy_export_t1", -3),
         ("active_energy_export_t2", -3)]  # fmt: skip
ISKRAEMECO_LISTS = {
    "ljubljana-5s": ["meter_id", "0-0:96.1.3", *_P, *_U, *_I, *_PIN, *_POUT],
    "ljubljana-15min": [
        "meter_id",
        "0-0:96.1.3",
        "0-0:96.3.10",
        "0-0:96.14.0",
        *_EIN,
        *_EOUT,
        ("reactive_energy_import", -3),
        ("reactive_energy_export", -3),
    ],  # fmt: skip
    "celje": ["meter_id", "0-0:96.1.2", *_U, *_I, *_P],
    "ed121-1phase": ["meter_id", "0-0:96.1.2", *_P, _U[0], *_EOUT[1:]],
    "ed121-1phase-10": ["meter_id", "0-0:96.1.2", *_P, _U[0], _I[0], _PIN[0], _POUT[0]],
    "am550-9": ["meter_id", *_P[:2], *_EIN, *_EOUT],
    "15min-4": [None, None, _EIN[0], _EOUT[0]],
    "ie5": [
        "meter_id",
        None,
        None,
        *_EIN,
        *_EOUT,
        "1-0:5.8.0",
        "1-0:6.8.0",
        "1-0:7.8.0",
        "1-0:8.8.0",
        *_P[:2],
        ("power_factor", -3),
        *_PIN,
        *_POUT,
        *_U,
        *_I,
        None,
        None,
        None,
        None,
        None,
    ],  # fmt: skip
}
_SI = "hdlc/iskraemeco_si_amsreader.json#"
_HR = "hdlc/iskraemeco_hr_amsreader.json#"
ISKRAEMECO = {
    **{_SI + str(i): "ljubljana-5s" for i in (0, 2, 4, 5, 17)},
    **{_SI + str(i): "ljubljana-15min" for i in (1, 3, 18)},
    _SI + "7": "celje",
    _SI + "8": "celje",
    **{_SI + str(i): "ed121-1phase" for i in (9, 10, 13)},
    _SI + "14": "am550-9",
    _SI + "16": "ed121-1phase-10",
    # every 15 min, naming no maker: known by its length and shape
    **{_SI + str(i): "15min-4" for i in (11, 12, 15)},
    _HR + "2": "ie5",
    _HR + "3": "ie5",
}


def _iskraemeco_expected(layout, frame):
    exp = frame["expected"]
    body = exp["body"]
    want = {"meter_manufacturer": "Iskraemeco", "meter_time": exp["datetime"][:19]}
    assert len(body) == len(layout)
    for field, value in zip(layout, body, strict=True):
        if field is None:
            continue
        name, exponent = field if isinstance(field, tuple) else (field, 0)
        if isinstance(value, str):
            want[name] = value[2:] if value.startswith("0x") else value
        else:
            want[name] = Decimal(value).scaleb(exponent)
    return want


@pytest.mark.parametrize("case_id", sorted(ISKRAEMECO))
def test_iskraemeco_list(case_id, results):
    """Every value of an Iskraemeco list lands on its field, exact, and nothing else."""
    case = next(c for c in CASES if c.id == case_id)
    out = results.get(case_id, [])
    assert _errors(out) == [] and len(_readings(out)) == 1, out
    reading = _readings(out)[0]
    want = _iskraemeco_expected(ISKRAEMECO_LISTS[ISKRAEMECO[case_id]], case.frame)
    assert _compare(reading, want) == {}
    assert set(reading) == set(want)


def test_each_readings_text_fills_a_buffer_of_its_length_and_no_less():
    """reading.write() puts a reading's JSON into a buffer the caller owns (the dongle's
    publish buffer, `hanctl decode`'s lines): in a buffer of exactly its length it is
    whole, one byte less raises OverflowError, and the buffer never changes size (a
    bytearray's slice given more or fewer bytes than it spans grows or shrinks it). Each
    field is written with the punctuation that follows it, the last one's turned into
    the closing brace, so the bytes just past the text are where this can go wrong."""
    from decoder import Decoder
    from reading import to_json, write

    readings = []
    decoder = Decoder(readings.append)
    for case in CASES:
        for chunk in case.chunks:
            decoder.feed(chunk)
        decoder.end()
    readings.append({"x y": 'a"b', "0-1:2.3.4": (-5, -1), "meter_model": True})
    assert len(readings) > 100
    for reading in readings:
        text = to_json(reading).encode()
        for start in (0, 3):
            for size in range(start + len(text) - 3, start + len(text) + 3):
                buf = bytearray(b"#" * size)
                if size < start + len(text):
                    with pytest.raises(OverflowError):
                        write(reading, buf, start)
                else:
                    assert buf[start : write(reading, buf, start)] == text
                assert len(buf) == size
