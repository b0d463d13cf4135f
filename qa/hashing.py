"""Content hashes: short, stable, and the same on every machine."""

import hashlib


def digest(text: str) -> str:
    """A hex SHA-256 of the UTF-8 text, cut to 32 characters (128 bits)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
