"""The one rule for the library's timestamps: UTC, without a zone, as its TIMESTAMP columns hold them."""

from __future__ import annotations

import datetime

__all__ = ["utc_now"]


def utc_now() -> datetime.datetime:
    """Now, in UTC, as a naive datetime (``indexed_at``, ``computed_at``, ``created_at``...)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
