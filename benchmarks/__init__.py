"""Benchmarks for patternviz-widget: speed and memory against the alternatives a user would pick.

Run everything with ``scripts/bench`` (or ``python -m benchmarks.run``); see ``benchmarks/run.py``.
Results land in ``benchmarks/results/`` as JSON plus ``RESULTS.md``. Not part of the test suite's
pass/fail; ``tests/test_benchmarks_smoke.py`` runs every section at tiny sizes so none can rot.
"""
