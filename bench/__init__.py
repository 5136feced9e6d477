"""The benchmarks, run from the project root as `python -m bench NAME [options]` (bench/__main__.py
lists them); docs/benchmarks.md explains what they measure."""
