"""Alembic environment for the routing store (run programmatically by ``routing.store.Store.open``)."""
