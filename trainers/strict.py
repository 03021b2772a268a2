"""The base of every typed config section in the project (families, samplers, the root schema)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from preprocessing.redact import redact_uri, userinfo_schemes


def _check_no_store_credentials(value: Any) -> None:
    if isinstance(value, str):
        # every scheme but http(s): an MLflow server may take basic auth in its URL (redacted
        # wherever it is shown); object stores take credentials from the environment.
        if any(scheme not in ("http", "https") for scheme in userinfo_schemes(value)):
            raise ValueError(f"credentials in a storage URI ({redact_uri(value)}) are refused: they would "
                             "be logged and stored with the run; give them as AWS_ACCESS_KEY_ID / "
                             "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_no_store_credentials(v)
    elif isinstance(value, dict):
        for v in value.values():
            _check_no_store_credentials(v)


class Strict(BaseModel):
    """Config base: an unknown key is an error, never silently ignored; a storage URI carrying
    credentials (``s3://KEY:SECRET@bucket``) is refused, and the message does not repeat them."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_credentials_in_uris(cls, value: Any) -> Any:
        _check_no_store_credentials(value)
        return value
