"""restoray's composition root: typed configs, the ``restoray`` CLI and the Ray jobs.

Everything that touches Ray (apart from the worker-side train loop in
``trainers/loop.py``) lives here, so the data and model code stays testable
without a cluster.
"""
