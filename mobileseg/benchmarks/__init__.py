"""Benchmarks: each module runs as ``python -m mobileseg.benchmarks.<name>`` and writes its numbers under results/."""
