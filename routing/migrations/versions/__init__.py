"""Alembic revisions of the routing store schema."""
