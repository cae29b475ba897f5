"""Evaluation harnesses and benchmarks, installed as `ssl_coded.eval` (never as a bare `eval`)."""
