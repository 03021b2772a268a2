"""Raw datasets -> validated, cropped WebDataset shards + manifest.json.

Modules: ``storage`` (local / S3 roots), ``schema`` (sample layout and PNG
codecs), ``validate`` (decode + quarantine policy), ``crop`` (sub-image boxes),
``adapters`` (``ADAPTERS`` registry), ``video_adapters`` (clip datasets), ``clips`` (clip
samples), ``video_decode`` (PyAV decoding), ``shards`` (plan, build, commit),
``shard_index`` (one sample of a committed shard set by index, with ranged reads).
Imports nothing from the rest of restoray and nothing from Ray.
"""

# The registry module first: preprocessing.video_adapters builds on it and it registers them.
from . import adapters as _adapters  # noqa: E402,F401
