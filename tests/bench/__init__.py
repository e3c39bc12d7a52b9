"""The benchmark: `python -m tests.bench` (or `deploy/bench.sh`); see __main__.py."""
