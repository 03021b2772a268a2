"""preprocessing/ stays a leaf: it imports nothing from the project and nothing from Ray."""

import subprocess
import sys

CHECK = """
import sys
import preprocessing, preprocessing.storage, preprocessing.schema, preprocessing.validate
import preprocessing.crop, preprocessing.adapters, preprocessing.shards
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pipelines', 'trainers', 'degradations', 'torch'))
print(','.join(bad))
"""


def test_no_forbidden_imports():
    out = subprocess.run([sys.executable, "-c", CHECK], check=True, capture_output=True, text=True).stdout.strip()
    assert out == ""
