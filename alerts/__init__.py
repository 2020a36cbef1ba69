"""Pure alert logic (docs/architecture.md, "Packages").

The alert engine process that runs this logic against live events is
``ingest/alert_engine.py`` (``python app.py alerts``; docs/architecture.md, "Processes").
"""
