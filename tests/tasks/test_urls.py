"""Passwords in URLs, in every form a user writes them, are masked; nothing else in a URL is."""

import pytest

from tasks.urls import masked


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://distill:hunter2@db.internal:5432/requests",
            "postgresql://distill:***@db.internal:5432/requests",
        ),
        (
            "postgresql://distill@db/requests?sslmode=require&password=hunter2",
            "postgresql://distill@db/requests?sslmode=require&password=***",
        ),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # an unencoded @ in the password
        ("mysql://root:Pässwörd!@localhost/x", "mysql://root:***@localhost/x"),
        ("store at postgresql://a:b@h/db and s3://bucket/key", "store at postgresql://a:***@h/db and s3://bucket/key"),
    ],
)
def test_a_password_in_a_url_is_masked(url, shown):
    assert masked(url) == shown


@pytest.mark.parametrize(
    "url", ["postgresql://distill@db/requests", "http://127.0.0.1:5000/path@v2", "s3://bucket/logs/a@b.jsonl", "x.db"]
)
def test_a_url_without_a_password_is_left_alone(url):
    assert masked(url) == url
