"""psctl's benchmarks: plain redis-py baselines and psctl side by side (issue 5).

Run ``python -m benchmarks`` (``--quick`` for a small run, ``--help`` for the
options). See ``run.py`` for what a run does and ``cases/`` for what is measured.
"""
