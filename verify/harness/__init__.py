"""The training harness: one loop (``loop``), run configs (``config``), the measurement plug-in protocol
(``measurement``), checkpoints, optimisers, the runner and the sweep. The harness names no study: studies plug in
through ``verify.plugins.register_measurement`` (one line per study in ``verify/studies/__init__.py``)."""
