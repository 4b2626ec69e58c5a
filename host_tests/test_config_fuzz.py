"""Config fuzzing: thousands of broken config.json files, each answered with clear
messages and never a crash, on CPython and on the MicroPython unix port at 96 KB.

The files are mutations of the README's example (the config an owner edits): a value of
another type, a key dropped, renamed or added, a huge string, a deep nest, then the bytes
cut short, a byte flipped to one that is not UTF-8, or the file emptied. Seeded, so a
failure names the case that reproduces it.
"""

import copy
import json
import random
import re

import pytest

import config
from configs import BROKER_PW, EXAMPLE, WIFI_PW
from mp import dest_driver

SECRETS = (WIFI_PW, BROKER_PW)
CASES_CPYTHON = 20000
CASES_MICROPYTHON = 400  # one interpreter, 96 KB heap, a file at a time
ODD_VALUES = (None, True, 0, -1, 1.5, 2**40, "", "x" * 5000, "\u00e6\u00f8\u00e5", [], {}, [[[]]])


def _paths(node, path=()):
    """Every (container, key) in the tree, for choosing what to break."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield node, k
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield node, i
            yield from _paths(v, path + (i,))


def mutate(rng):
    """A broken config.json's bytes."""
    c = copy.deepcopy(EXAMPLE)
    for _ in range(rng.randint(1, 4)):
        places = list(_paths(c))
        if not places:
            break
        where, key = rng.choice(places)
        action = rng.randrange(5)
        if action == 0:
            where[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action == 1 and isinstance(where, dict):
            del where[key]
        elif action == 2 and isinstance(where, dict):
            where[key + rng.choice(("s", "_", "X"))] = where.pop(key)
        elif action == 3 and isinstance(where, dict):
            where[f"k{rng.randrange(100)}"] = copy.deepcopy(rng.choice(ODD_VALUES))
        else:
            where[key] = [where[key]]
    raw = json.dumps(c).encode()
    how = rng.randrange(8)
    if how == 0:
        raw = raw[: rng.randrange(len(raw))]  # cut short
    elif how == 1:
        i = rng.randrange(len(raw))
        raw = raw[:i] + bytes([rng.choice((0x80, 0xC3, 0xFF, 0xED))]) + raw[i + 1 :]
    elif how == 2:
        raw = rng.choice((b"", b"   \n", b"\xef\xbb\xbf", b"[" * 2000, b"null"))
    return raw


def check(raw, cfg, problems):
    where = f"for {raw[:120]!r}"
    assert isinstance(problems, list), where
    assert (cfg is None) or not problems, where  # a config with a problem is not used
    assert cfg is not None or problems, where  # refused, and told why
    assert len(problems) <= config.MAX_PROBLEMS + 1, where
    for p in problems:
        assert isinstance(p, str) and p and len(p) < 400, (p, where)
        assert ": " in p, (p, where)  # "<key>: <what is wrong>; <how to fix it>"
        for secret in SECRETS:
            assert secret not in p, (p, where)


def test_twenty_thousand_broken_configs_each_get_a_message():
    rng = random.Random(5)
    refused = 0
    for _ in range(CASES_CPYTHON):
        raw = mutate(rng)
        cfg, problems = config.parse(raw, "config.json", False)
        check(raw, cfg, problems)
        refused += cfg is None
    assert refused > CASES_CPYTHON * 0.9  # the mutations do break configs


@pytest.mark.parametrize("unix", [False, True])
def test_micropython_answers_broken_configs_alike(tmp_path, unix):
    # Each file read from the filesystem by config.load, as the dongle reads it.
    rng = random.Random(7 + unix)
    raws = [mutate(rng) for _ in range(CASES_MICROPYTHON)]
    paths = []
    for i, raw in enumerate(raws):
        paths.append(tmp_path / f"config-{i}.json")
        paths[-1].write_bytes(raw)
    got = dest_driver.run([["load", str(p), unix] for p in paths], "micropython")
    for raw, path, (cfg, problems) in zip(raws, paths, got, strict=True):
        check(raw, cfg, problems)
        want_cfg, want = config.load(str(path), unix)
        if b"\xed" in raw or b"[[[[[" in raw:
            continue  # surrogate bytes and deep nests: each runtime words its own refusal
        # CPython's JSON errors carry a line and column, MicroPython's do not.
        want = [re.sub(r" \(line \d+ column \d+\)", "", p) for p in want]
        assert problems == want and (cfg is None) == (want_cfg is None), raw[:200]
