"""Self-contained decoder cases (no ../shared needed): frames made by encoder.py, fed as
streams with the edge cases a HAN line produces, on MicroPython and CPython."""

import json
from decimal import Decimal

import pytest

from frames import CASES, P1_WANT, WANT
from mp import RUNTIMES, run_cases


@pytest.fixture(scope="module", params=RUNTIMES)
def out(request):
    lines = [
        f"{name} {framing} {','.join(c.hex() for c in chunks)}"
        for name, (framing, chunks) in CASES.items()
    ]
    return run_cases(lines, request.param)


def readings(out, name):
    return [json.loads(r, parse_float=Decimal) for k, r in out.get(name, []) if k == "R"]


def errors(out, name):
    return [r.split(" ")[0] for k, r in out.get(name, []) if k == "E"]


def powers(out, name):
    return [r["active_power_import"] for r in readings(out, name)]


def test_values_exact(out):
    assert readings(out, "one") == [WANT]
    assert errors(out, "one") == []


@pytest.mark.parametrize("name", ["shared_flag", "idle_flags", "byte_by_byte"])
def test_flags_and_chunking(out, name):
    assert powers(out, name) == [1234, 99]
    assert errors(out, name) == []


def test_noise_between_frames_is_skipped(out):
    # "7e aa 55" after the first frame reads as the start of a 599-byte frame; its
    # addresses run on (7e a0 ... all even), so it is dropped as soon as its header is in
    # (not when the stream ends), and the search finds the second frame.
    assert powers(out, "noise_between") == [1234, 99]
    assert errors(out, "noise_between") == ["noise", "format"]
    assert ("E", "noise 7 bytes") in out["noise_between"]


@pytest.mark.parametrize("name", ["p1_cut_midline", "p1_cut_at_line"])
def test_a_cut_telegram_does_not_swallow_the_next(out, name):
    assert readings(out, name) == [P1_WANT]
    assert errors(out, name) == ["checksum"]


def test_a_telegram_cut_after_its_bang_does_not_swallow_the_next(out):
    assert readings(out, "p1_cut_at_bang") == [P1_WANT]
    assert errors(out, "p1_cut_at_bang") == ["format"]


def test_five_crc_digits_are_a_bad_checksum(out):
    assert readings(out, "p1_five_digits") == [P1_WANT]
    assert errors(out, "p1_five_digits") == ["checksum"]


def test_nested_identification_lines_are_one_bad_telegram(out):
    assert readings(out, "p1_nested_lines") == [P1_WANT]
    assert errors(out, "p1_nested_lines") == ["noise", "checksum"]


def test_frame_cut_midway_does_not_swallow_the_next(out):
    assert powers(out, "cut_then_good") == [99]
    assert errors(out, "cut_then_good")[0] in ("length", "checksum")


def test_stream_ending_inside_a_frame_is_truncated(out):
    assert powers(out, "cut_at_end") == [1234]
    assert errors(out, "cut_at_end") == ["truncated"]  # its bytes are not noise too


@pytest.mark.parametrize("name", ["bad_fcs", "bad_hcs"])
def test_checksum_failure_is_counted_and_skipped(out, name):
    assert powers(out, name) == [99]
    assert errors(out, name)[0] == "checksum"


def test_oversize_length_field(out):
    assert errors(out, "oversize")[0] == "oversize"
    assert powers(out, "oversize") == [99]


def test_deep_nesting_is_bounded(out):
    assert errors(out, "deep") == ["nesting"]


def test_hdlc_segments_reassembled(out):
    assert readings(out, "segmented") == [WANT]


def test_lost_first_segment(out):
    # The orphans are counted; the next whole frame decodes.
    assert "segment" in errors(out, "segment_lost")
    assert powers(out, "segment_lost") == [1234]


def test_general_block_transfer(out):
    assert readings(out, "gbt") == [WANT]


def test_mbus_segments(out):
    assert readings(out, "mbus") == [WANT]


def test_bare_llc(out):
    assert readings(out, "apdu_in_llc") == [WANT]


@pytest.mark.parametrize("name", ["p1", "p1_byte_by_byte"])
def test_p1(out, name):
    assert readings(out, name) == [P1_WANT]


@pytest.mark.parametrize("name", ["p1_no_crlf", "p1_no_lf"])
def test_a_telegram_that_ends_the_input_after_its_crc_decodes(out, name):
    assert readings(out, name) == [P1_WANT]
    assert errors(out, name) == []


def test_a_telegram_cut_inside_its_crc_or_failing_it_at_the_end_is_cut_off(out):
    assert errors(out, "p1_cut_in_crc") == ["truncated"] and not readings(out, "p1_cut_in_crc")
    assert errors(out, "p1_no_crlf_bad_crc") == ["truncated"]
    assert not readings(out, "p1_no_crlf_bad_crc")


def test_identification_bytes_are_the_makers_when_the_crc_holds(out):
    # 0xAB was refused as `format`, 0x02 in the same place taken: a maker's bytes are kept.
    (r,) = readings(out, "p1_header_bytes")
    assert r["meter_model"] == "ISK5\xab2M550T\x02-1012"
    assert r == dict(P1_WANT, meter_model=r["meter_model"])


def test_p1_crc_without_leading_zero(out):
    assert powers(out, "p1_short_crc") == [100]


def test_p1_without_crc_is_marked_unchecked(out):
    (r,) = readings(out, "p1_no_crc")
    assert r["unchecked"] is True and r["active_power_import"] == 1010
    assert "unchecked" not in readings(out, "p1")[0]


def test_p1_bad_crc(out):
    assert errors(out, "p1_bad_crc") == ["checksum"] and readings(out, "p1_bad_crc") == []


def test_p1_bang_inside_a_line_does_not_end_the_telegram(out):
    # Else the lines before it would pass as a telegram without a CRC (found by
    # test_bitflips.py): the telegram runs on to its real end, where the CRC fails.
    assert errors(out, "p1_bang_in_line") == ["checksum"]
    assert readings(out, "p1_bang_in_line") == []


def test_p1_and_hdlc_in_one_stream(out):
    assert powers(out, "p1_then_hdlc") == [1193, 1234]


def test_axdr_types(out):
    (r,) = readings(out, "types")
    assert r["frequency"] == Decimal("49.5")
    assert r["power_factor"] == 1
    assert r["active_energy_export"] == Decimal("12345678901.234")
    assert r["active_power_import"] == -5
    assert r["1-0:96.3.10"] is True


def test_kaifa_positional_one_phase_list3(out):
    (r,) = readings(out, "kaifa_1phase_list3")
    assert r == {
        "meter_id": "6970631401753985",
        "meter_model": "MA105H2E",
        "meter_manufacturer": "Kaifa",
        "list_id": "KFM_001",
        "meter_time": "2024-03-05T14:00:00",
        "active_power_import": 512,
        "active_power_export": 0,
        "reactive_power_import": 0,
        "reactive_power_export": 141,
        "current_l1": Decimal("2.251"),
        "voltage_l1": Decimal("231.2"),
        "active_energy_import": Decimal("112.727"),
        "active_energy_export": 0,
        "reactive_energy_import": Decimal("0.101"),
        "reactive_energy_export": Decimal("13.22"),
    }


def test_kamstrup_null_padding_and_units(out):
    (r,) = readings(out, "kamstrup_1phase")
    assert r["current_l1"] == Decimal("5.83")
    assert r["active_energy_import"] == Decimal("12327.87")  # Norwegian: 10 Wh units
    assert r["meter_time"] == "2024-03-05T14:00:00"  # from the APDU header


def test_iskraemeco_list_that_names_no_maker(out):
    (r,) = readings(out, "iskraemeco_15min")
    assert r == {
        "meter_manufacturer": "Iskraemeco",
        "meter_time": "2024-03-05T14:00:00",
        "active_energy_import": Decimal("7924.641"),
        "active_energy_export": Decimal("0.25"),
    }


def test_iskraemecos_austrian_list_one_code_then_positions(out):
    # Every value of the decrypted push amsreader-firmware's log shows, on its field.
    (r,) = readings(out, "iskraemeco_at")
    assert r == {
        "meter_id": "1121378381199",
        "meter_manufacturer": "Iskraemeco",
        "meter_time": "2024-05-07T21:11:20",
        "active_energy_import": Decimal("56.133"),
        "active_energy_export": Decimal("420.837"),
        "reactive_energy_import": Decimal("1455.864"),
        "reactive_energy_export": Decimal("2293.936"),
        "active_power_import": 0,
        "active_power_export": 10,
    }


def test_ciphered_push_without_key(out):
    assert errors(out, "ciphered") == ["encrypted"]


def test_a_meter_type_sent_as_a_number_is_text(out):
    assert "internal" not in errors(out, "model_not_text")
    first, second = readings(out, "model_not_text")
    assert isinstance(first["meter_model"], str)
    assert second == WANT


def test_frames_without_information_do_not_corrupt_reassembly(out):
    assert readings(out, "infoless_segments")[-1] == WANT
    assert "internal" not in errors(out, "infoless_segments")


def test_a_single_text_value_is_no_kaifa_list_1(out):
    (r,) = readings(out, "one_text_value")
    assert "meter_manufacturer" not in r and "active_power_import" not in r


def test_end_closes_every_open_candidate(out):
    assert errors(out, "two_cut_frames") == ["truncated", "truncated"]


def test_damaged_pushes_are_rejected_not_raised(out):
    assert errors(out, "short_object_list") == []  # an empty structure: nothing to read
    assert readings(out, "short_object_list") == [{}]
    assert errors(out, "empty_transfer") == ["malformed"]


def test_a_frames_closing_flag_is_not_noise(out):
    assert ("E", "noise 1 bytes") in out["frame_then_zero"]


def test_binary_inside_p1_is_one_rejection_not_thousands(out):
    assert errors(out, "slashes") == ["format"]
    assert powers(out, "slashes") == [1193]


def test_slashes_without_a_maker_are_noise(out):
    assert errors(out, "bare_slashes") == ["noise"]
    assert powers(out, "bare_slashes") == [1193]


def test_float_registers_are_exact_decimals(out):
    (r,) = readings(out, "float32")
    assert r["frequency"] == Decimal("49.99")


def test_a_three_byte_address_is_no_frame(out):
    # IEC 62056-46 6.4.2: addresses are 1, 2 or 4 bytes.
    assert errors(out, "three_byte_address")[0] == "format"
    assert powers(out, "three_byte_address") == [99]


def test_m_bus_channels_keep_their_codes_and_meter_id_is_the_meters(out):
    (r,) = readings(out, "object_list_channels")
    assert r == {
        "meter_id": "63326413",
        "0-8:25.9.0": "0008190900ff",
        "0-1:96.1.0": "12345678",
        "0-2:96.1.0": "",
        "1-0:1.7.0": 362,
    }


def test_object_list_push_keeps_its_place_past_an_odd_name(out):
    (r,) = readings(out, "object_list_odd_name")
    # raw under the code: the push has no scaler; 1-0:1.8.0*101 is no register to read
    assert r == {"meter_id": "12345678", "0-8:25.9.0": "0008190900ff", "1-0:1.7.0": 1234}


def test_energy_registers_are_the_fields_whose_unit_starts_with_k():
    """normalize.store() moves an energy register's decimal point by its key (D = 8) and
    whether its name is a field of the table, not by the unit's text: the two must agree
    for every row, or a register would be read 1000 times off."""
    import obis

    for key, name in obis.BY_KEY.items():
        assert obis.UNIT[name].startswith("k") == (key >> 8 & 0xFF == 8), name
    assert "1-0:1.8.5" not in obis.UNIT  # a code with no field keeps the meter's unit
