"""Pure, seeded data synthesis: GT -> LQ degradations for the restoray pipelines.

Functions here take arrays, parameters and a random generator and return arrays; they do
no I/O, start no Ray work and import nothing else from the project. ``PRESETS`` maps a
preset name (``bicubic``, ``bd``, ``realesrgan``, ...) to its function; ``degrade`` applies one by name.
"""

from degradations.matlab_resize import imresize
from degradations.presets import PRESETS, degrade, degrade_pair

__all__ = ["PRESETS", "degrade", "degrade_pair", "imresize"]
