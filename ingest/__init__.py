"""MQTT in and out (docs/architecture.md, "Packages").

The processes here (docs/architecture.md, "Processes"): the ingest worker
(``ingest/worker.py``, ``python app.py ingest``), the alert engine
(``ingest/alert_engine.py``, ``python app.py alerts``) and the simulator
(``ingest/simulator.py``, ``python app.py simulate``).
"""
