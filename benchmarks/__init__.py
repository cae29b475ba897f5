"""Benchmarks (not installed): each prints its ratios against a baseline run side by side.

Run one as `python -m benchmarks.NAME --help`.
"""
