"""Errors that mean bad input (the CLI exits 2 with their message), importable at no cost: the CLI
catches them before it knows which command, and so which heavy module, will run."""

from __future__ import annotations


class ConfigError(Exception):
    """A bad config: `str(err)` is the whole message a user sees (no traceback)."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source, self.key, self.message = source, key, message
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}" if key else f"{where}{message}")
