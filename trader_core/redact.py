"""Scrubbing text that may carry secrets before a user or a model sees it (a leaf module: imports nothing)."""

from __future__ import annotations

import re

_SECRET = re.compile(r"(https?|wss?)://\S+|0x[0-9a-fA-F]{64}")


def scrub(text: str) -> str:
    """Remove URLs (RPC endpoints can carry API keys) and 32-byte hex strings (keys) from error text."""
    return _SECRET.sub("<redacted>", text)
