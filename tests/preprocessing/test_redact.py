"""Secret masking of URIs, text and config trees (preprocessing/redact.py)."""

from __future__ import annotations

import pytest

from preprocessing.redact import MASK, has_userinfo, redact_config, redact_text, redact_uri


@pytest.mark.parametrize("given, want", [
    ("http://user:pw@127.0.0.1:5056", "http://***@127.0.0.1:5056"),
    ("s3://AKID:se/cr+ET@bucket/runs", "s3://***@bucket/runs"),  # AWS secrets hold '/' and '+'
    ("s3://bucket/a@b.png", "s3://bucket/a@b.png"),
    ("s3://KEY:SECRET@bucket/runs/x", "s3://***@bucket/runs/x"),
    ("https://token@host/path?a=1", "https://***@host/path?a=1"),
    ("https://h/x?X-Amz-Signature=abc&X-Amz-Credential=def&size=3", "https://h/x?X-Amz-Signature=***&X-Amz-Credential=***&size=3"),
    ("https://h/x?access_token=abc#frag", "https://h/x?access_token=***#frag"),
    ("s3://bucket/key.tar", "s3://bucket/key.tar"),
    ("mail me at a@b.org", "mail me at a@b.org"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
])
def test_redact_uri(given, want):
    assert redact_uri(given) == want


def test_redact_text_masks_secret_environment_values_and_uris_inside_prose():
    env = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "AWS_SESSION_TOKEN": "tok" * 5,
           "AWS_ACCESS_KEY_ID": "testing", "HOME": "/root/home-directory"}
    text = ("boto failed with key wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY and toktoktoktoktok at "
            "http://u:p4ss@server:5000/api; key id testing; home /root/home-directory")
    got = redact_text(text, env)
    assert "wJalr" not in got and "toktok" not in got and "p4ss" not in got
    assert got.count(MASK) == 3
    assert "testing" in got and "/root/home-directory" in got  # short values and non-secret names stay


def test_redact_config_masks_secret_keys_and_uri_values_not_other_fields():
    cfg = {"mlflow": {"tracking_uri": "http://me:pw@h:1", "experiment": "x"},
           "storage": {"aws_secret_access_key": "abcd", "password": "", "token": None},
           "list": ["s3://a:b@c/d", 3, True], "num_passes": 2, "author": "me"}
    got = redact_config(cfg, environ={})
    assert got == {"mlflow": {"tracking_uri": "http://***@h:1", "experiment": "x"},
                   "storage": {"aws_secret_access_key": MASK, "password": "", "token": None},
                   "list": ["s3://***@c/d", 3, True], "num_passes": 2, "author": "me"}
    assert cfg["mlflow"]["tracking_uri"] == "http://me:pw@h:1"  # a copy: the original still connects
    assert has_userinfo("http://me:pw@h:1") and not has_userinfo("s3://bucket/a@b.png")
