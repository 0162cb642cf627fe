"""Alembic environment for the routing store.

Two ways in:

- programmatically (what ``Store.open()`` does): ``routing.store._upgrade_to_head`` runs
  ``alembic.command.upgrade`` inside ``AsyncConnection.run_sync`` and hands the sync
  connection over in ``config.attributes["connection"]``. The upgrade then runs inside the
  caller's transaction (``BEGIN IMMEDIATE`` on SQLite, so the DDL is atomic and two processes
  opening a fresh file migrate one after the other).
- from the command line, for writing new revisions:
  ``DATABASE_URL=sqlite+aiosqlite:///ivr-state.db alembic -c routing/alembic.ini revision --autogenerate -m "..."``
  builds the store's async engine from the URL and runs the same code through ``run_sync``.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from routing.store import default_url, make_engine, metadata

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things: copy-and-move
        compare_type=True,
        # The store's SQLite connections leave transactions to SQLAlchemy (BEGIN IMMEDIATE), so SQLite's
        # DDL is transactional here like PostgreSQL's: a failed migration leaves nothing half-done.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url).execution_options(ivr_write=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url") or default_url(),
                      target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or default_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
