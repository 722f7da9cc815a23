"""The experiment store: models, engine set-up, migrations and read queries."""

from rltui.store.engine import Store, StoreError, open_store, resolve_url

__all__ = ["Store", "StoreError", "open_store", "resolve_url"]
