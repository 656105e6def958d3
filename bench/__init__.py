"""Benchmarks of the sidecar and the controller (``make bench`` → docs/benchmarks.md)."""
