"""Benchmarks and their reports (``sarcodec benchmark``, ``sarcodec report``, ``decompress --compare``).

``classical`` the classical codecs (JPEG 2000, HTJ2K, JPEG XL; JPEG 2000 on the full range), ``bd`` the
Bjøntegaard deltas, ``sweep`` the rate sweep of every codec over the images and its report, ``plots`` its figures,
``compare`` one decoded scene against its original, ``bounded`` the near-lossless/lossless benchmark,
``viewer`` the offline comparison page and ``html_report`` that page for a benchmark run.
"""
