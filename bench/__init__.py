"""Benchmarks of fastsockjs (see bench/README.md); not part of the test run."""
