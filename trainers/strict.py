"""The base of every typed config section in the project (families, samplers, the root schema)."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Config base: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")
