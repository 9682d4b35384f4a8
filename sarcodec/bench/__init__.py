"""Benchmarks and their reports. ``viewer`` writes the offline comparison page, ``html_report`` builds it from a
benchmark's results (``sarcodec report``). The benchmark itself still lives in ``sarcodec/benchmark.py`` and
``sarcodec/benchmark_bounded.py``; it moves here as the STYLE's ``bench/`` package."""
