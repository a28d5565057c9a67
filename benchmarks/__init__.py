"""Benchmarks: our engine and adapters against the other BGE integrations, in one run.

Run ``python -m benchmarks --help``. Results are Markdown tables on standard output and a JSON
file; every figure is a ratio or a rate measured in the same run, on the same model and inputs.
"""
