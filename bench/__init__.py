"""Benchmarks of activity_grades against an unpartitioned table and other designs.

Run ``python -m bench.run --help``; see docs/performance.md.
"""
