"""Keeping secrets out of MLflow, logs and error messages.

A user may put a credential where a location goes (``http://user:PASSWORD@mlflow:5000``,
``s3://KEY:SECRET@bucket/runs``, ``https://host/x?token=...``), in a config value named like a
secret (``aws_secret_access_key: ...``), or in the environment (``AWS_SECRET_ACCESS_KEY``,
``MLFLOW_TRACKING_PASSWORD``). restoray needs the credential to connect, but nothing it logs
or prints should repeat it: MLflow params and tags are readable by every MLflow user, and
terminal output ends up in CI logs.

The functions here rewrite text and config trees before they leave the process:

* :func:`redact_uri` / :func:`redact_text`: the userinfo of every ``scheme://user:pass@`` becomes
  ``***``, and the values of secret-looking query parameters (``token=``, ``X-Amz-Signature=``...)
  become ``***``; :func:`redact_text` also replaces the value of every secret-named environment
  variable that is at least :data:`MIN_SECRET_LEN` characters long (shorter values, such as the
  test suite's ``testing`` keys, would mangle ordinary words);
* :func:`redact_config`: a nested dict/list where values under secret-named keys become ``***``
  and every string goes through :func:`redact_text`.

Redaction only rewrites copies; the connection itself still uses the real value.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

__all__ = ["MASK", "MIN_SECRET_LEN", "has_userinfo", "redact_config", "redact_text", "redact_uri",
           "secret_env_values", "userinfo_schemes"]

MASK = "***"
MIN_SECRET_LEN = 8
# Names (of config keys, environment variables, query parameters) whose value is a credential.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|credential|api[_-]?key|access[_-]?key|"
                          r"private[_-]?key|signature|^auth$|auth[_-]?header)", re.IGNORECASE)
# scheme://userinfo@ : either user:password (the password may hold '/', as AWS secret keys do,
# though RFC 3986 wants it escaped) or a bare token without '/' or ':'.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)"
                       r"(?P<userinfo>[^/?#\s@:'\"]+:[^?#\s@'\"]*|[^/?#\s@:'\"]+)@")
_QUERY_SECRET = re.compile(r"(?P<name>[?&;][^=&#\s]*)=(?P<value>[^&#\s'\"]+)")


def has_userinfo(text: str) -> bool:
    """Whether ``text`` holds a ``scheme://user[:password]@`` part."""
    return bool(_USERINFO.search(text or ""))


def userinfo_schemes(text: str) -> list[str]:
    """The schemes (``s3``, ``http``...) of the URIs in ``text`` that carry userinfo."""
    return [m["scheme"][:-3].lower() for m in _USERINFO.finditer(text or "")]


def redact_uri(text: str) -> str:
    """``text`` with URI userinfo and secret-looking query values masked (``s3://***@bucket/x``)."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)

    def _query(m: re.Match) -> str:
        return f"{m['name']}={MASK}" if _SECRET_NAME.search(m["name"]) else m.group(0)

    return _QUERY_SECRET.sub(_query, text)


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-named environment variables (``AWS_SECRET_ACCESS_KEY``, ``*_TOKEN``,
    ``*_PASSWORD``...) long enough to be safely replaced wherever they appear, longest first."""
    environ = os.environ if environ is None else environ
    found = {v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN}
    found |= {v for k, v in environ.items() if k == "AWS_ACCESS_KEY_ID" and len(v) >= MIN_SECRET_LEN}
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, environ: Mapping[str, str] | None = None) -> str:
    """:func:`redact_uri`, plus every secret environment value replaced by ``***``."""
    if not isinstance(text, str) or not text:
        return text
    text = redact_uri(text)
    for value in secret_env_values(environ):
        text = text.replace(value, MASK)
    return text


def redact_config(obj: Any, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of a config tree (dicts, lists, scalars) with secrets masked.

    A non-empty value under a secret-named key (``password``, ``aws_secret_access_key``,
    ``token``...) becomes ``***``; every other string goes through :func:`redact_text`.
    """
    if isinstance(obj, Mapping):
        return {k: (MASK if _SECRET_NAME.search(str(k)) and v not in (None, "", {}, [])
                    and not isinstance(v, (Mapping, list, tuple, bool))
                    else redact_config(v, environ)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_config(v, environ) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj, environ)
    return obj
