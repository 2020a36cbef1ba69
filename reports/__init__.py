"""Bulletins (定期通报): periods, the report model, statistics and section builders.

Pure like ``geo/`` and ``alerts/``: the standard library and ``geo.china`` only;
no I/O, no SQL, no clock (``now`` is passed in).  The numbers come from
``data/report_queries.py``; rendering (HTML, PDF, charts) is
``dashboard/bulletin_render.py``.
"""
