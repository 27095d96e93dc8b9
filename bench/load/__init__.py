"""Server load benchmark: ``python -m bench.load`` (see bench/README.md)."""
