"""Benchmarks run by `make bench` (not collected by pytest: no file here starts with test_)."""
