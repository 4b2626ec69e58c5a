"""The stress runs: power loss, network faults, the day-long soak and the decoder fuzz.

The tests (test_power_loss.py, test_faults_network.py, test_soak.py, test_fuzz.py) import
these modules and run them shorter; their long runs are command lines, from the
repository's root, with host_tests on the module path (as pytest's `pythonpath` setting in
pyproject.toml puts it for the tests):

    PYTHONPATH=host_tests .venv/bin/python -m stress.power_loss --kills 300 --seed 7
    PYTHONPATH=host_tests .venv/bin/python -m stress.faults_network kills --hours 600
    PYTHONPATH=host_tests .venv/bin/python -m stress.soak --heap 160K --json build/soak.json
    PYTHONPATH=host_tests .venv/bin/python -m stress.fuzz.fuzz_decoder ... build/fuzz/corpus

Each module's docstring gives its options; docs/reliability.md gives the numbers.
"""
