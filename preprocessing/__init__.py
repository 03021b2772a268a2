"""Raw datasets -> validated, cropped WebDataset shards + manifest.json.

Modules: ``storage`` (local / S3 roots), ``schema`` (sample layout and PNG
codecs), ``validate`` (decode + quarantine policy), ``crop`` (sub-image boxes),
``adapters`` (``ADAPTERS`` registry), ``shards`` (plan, build, commit),
``shard_index`` (one sample of a committed shard set by index, with ranged reads).
Imports nothing from the rest of restoray and nothing from Ray.
"""
