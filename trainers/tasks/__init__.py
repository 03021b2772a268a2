"""Model families: each task module owns its loss, train step and evaluation.

``TASKS`` is the only registry; ``trainers/loop.py`` looks the family up by the
config's ``task`` field.
"""

from trainers.tasks.sr import SRTask

TASKS = {"sr": SRTask}
