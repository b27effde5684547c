"""Benchmarking: evaluate user programs, gap reports, regression checks.

* ``programs`` / ``sandbox`` / ``child`` — run an untrusted ``compute_model_placement``
  program (the ADRS/OpenEvolve "prism" interface) in a separate, limited process;
* ``runner`` — one task per (suite, case, method), validated and evaluated by
  ``kvopt.evaluate``; ``executors`` — where tasks run (``LocalExecutor``);
* ``scoring`` — references, gaps, summaries and the ADRS scores;
* ``results`` — a run as one JSON document; ``evaluate``, ``report``, ``regress``
  — the three commands built on it; ``plots``, ``progress`` — their output helpers.
"""
