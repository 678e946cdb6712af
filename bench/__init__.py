"""Benchmarks behind ``conveyor bench`` (not tests). A package so tests can import ``bench.chaos``."""
