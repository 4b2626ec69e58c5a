"""The decoder fuzz: its properties (check), seeds and mutator (corpus), and the atheris
entry point (fuzz_decoder); README.md says how to run each."""
