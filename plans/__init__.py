"""Weekly plans, collisions, joint tasks, the double-random draw, targeting, plan against actual.

Pure logic like ``geo/`` and ``alerts/``: the standard library's computation
modules only (no I/O, no clock: ``now`` is passed in).  SQL is in
``data/plans_store.py``, HTTP in ``dashboard/api_plans.py``; docs/plans.md
describes the rules.
"""
