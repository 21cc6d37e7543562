"""python -m msvision.bench: the benchmark command line (scripts/benchmark.py) and its subprocess workers."""
from msvision.bench.cli import main

main()
