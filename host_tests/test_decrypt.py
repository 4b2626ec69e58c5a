"""Encrypted meters end to end: the decoder with the owner's keys turns the keyed captures of
../shared/vectors into the readings of their published plaintext, on both runtimes and
through `hanctl decode --key`; a wrong key, a wrong auth key and no key say so apart."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import vectors
from hanctl import runtime

runtime.use_firmware_in_cpython()
from decoder import Decoder  # noqa: E402  (firmware/, on the path only now)

HANCTL = Path(sys.executable).parent / "hanctl"


def _keyed():
    if vectors.missing_reason():
        return []
    out = []
    for case in vectors.load_cases():
        f = case.frame
        if f.get("key_hex") and f.get("plaintext_apdu_hex"):
            out.append(case)
    return out


KEYED = _keyed()
needs_vectors = pytest.mark.skipif(
    not KEYED, reason=vectors.missing_reason() or "no keyed frames in the vectors"
)


def _decode(chunks, keys):
    readings, errors = [], []
    d = Decoder(readings.append, lambda kind, detail: errors.append(kind), keys=keys)
    for c in chunks:
        d.feed(c)
    d.end()
    return readings, errors


def _keys(frame, auth=True):
    ak = frame.get("auth_key_hex")
    return bytes.fromhex(frame["key_hex"]), bytes.fromhex(ak) if ak and auth else None


def _plain_reading(frame):
    readings = []
    d = Decoder(readings.append)
    apdu = bytearray.fromhex(frame["plaintext_apdu_hex"])
    d.apdu(apdu, len(apdu))
    return readings[-1]


@needs_vectors
@pytest.mark.parametrize("case", KEYED, ids=[c.id for c in KEYED])
def test_a_keyed_capture_reads_as_its_published_plaintext(case):
    readings, errors = _decode(case.chunks, _keys(case.frame))
    assert errors == [] and readings == [_plain_reading(case.frame)]


@needs_vectors
@pytest.mark.parametrize("case", KEYED, ids=[c.id for c in KEYED])
def test_wrong_keys_and_no_key_are_told_apart(case):
    key, ak = _keys(case.frame)
    wrong = bytes(b ^ 1 for b in key)
    assert _decode(case.chunks, None) == ([], ["encrypted"])
    assert _decode(case.chunks, (wrong, ak)) == ([], ["decrypt"])
    if ak is not None:  # the tag holds only with the auth key in the AAD
        assert _decode(case.chunks, (key, bytes(16))) == ([], ["decrypt"])


@needs_vectors
def test_a_counter_that_does_not_grow_is_counted_not_dropped():
    case = KEYED[0]
    readings, errors = _decode(case.chunks * 2, _keys(case.frame))
    assert len(readings) == 2 and errors == ["counter"]


@needs_vectors
@pytest.mark.parametrize("runtime_name", ["micropython", "cpython"])
def test_hanctl_decode_with_the_key(tmp_path, runtime_name):
    path = tmp_path / "capture.hex"
    path.write_text("\n".join(b"".join(c.chunks).hex() for c in KEYED))
    key, ak = KEYED[0].frame["key_hex"], KEYED[0].frame.get("auth_key_hex")
    same = [c for c in KEYED if c.frame["key_hex"] == key]
    argv = [HANCTL, "decode", "--runtime", runtime_name, "--errors", "--key", key]
    argv += ["--auth-key", ak] if ak else []
    proc = subprocess.run(argv + [str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    got = [x for x in lines if "error" not in x]
    assert len(got) == len(same)  # the frames of another key: "decrypt", no reading
    assert all(x["error"] == "decrypt" for x in lines if "error" in x)
    assert key not in proc.stdout + proc.stderr


def test_a_mistyped_key_is_refused_without_being_shown():
    proc = subprocess.run(
        [HANCTL, "decode", "--key", "00112233445566778899aabbccddeeZZ", "-"],
        capture_output=True,
        text=True,
        input="",
    )
    assert proc.returncode == 2 and "32 hex digits" in proc.stderr
    assert "ccddee" not in proc.stderr.lower()


@pytest.mark.parametrize("runtime_name", ["micropython", "cpython"])
def test_iskraemecos_austrian_push_ciphered_as_its_meter_does(tmp_path, runtime_name):
    """The Austrian AM550 ciphers with security control 0x20 (no tag) under its system title
    ("ISKit" and three bytes); the vectors hold such frames without their key, so the push
    its log shows decrypted is ciphered here under a key of the test's own, and must read as
    the clear one does."""
    import os

    import frames
    from hanctl import encoder

    key = os.urandom(16)
    clear = encoder.hdlc(encoder.LLC + frames.ISKRAEMECO_AT)
    sealed = encoder.sealed_hdlc(clear, key, counter=0x3D787, title=b"ISKit\xac\x00\x8f")
    path = tmp_path / "capture.hex"
    path.write_text(sealed.hex() + "\n" + clear.hex())
    argv = [HANCTL, "decode", "--runtime", runtime_name, "--errors", "--key", key.hex()]
    proc = subprocess.run(argv + [str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(x) for x in proc.stdout.splitlines())
    assert first == second and first["meter_id"] == "1121378381199"
    assert first["active_energy_export"] == 420.837 and first["active_power_export"] == 10
    assert "Warning" not in proc.stderr
