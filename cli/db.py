"""``pose-fast create-db [--db PATH]``: create or migrate the events database (idempotent)."""
from __future__ import annotations

import click

from .errors import UserError

__all__ = ["create_db"]


@click.command("create-db", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db", type=click.Path(dir_okay=False), default=None,
              help="Database file (default: $POSE_FAST_DB, else pose_fast/events.sqlite3 in the per-user data "
                   "folder, e.g. ~/.local/share).")
def create_db(db):
    """Create the events database, or migrate it to the current schema; safe to run again."""
    from pose_fast.events import SCHEMA_VERSION, EventStoreError, count_events, create_or_migrate, resolve_db_path

    path = resolve_db_path(db)
    try:
        before, after = create_or_migrate(path)
        events = count_events(path)
    except EventStoreError as exc:
        raise UserError(str(exc)) from None
    if before == 0:
        what = f"created (schema version {SCHEMA_VERSION})"
    elif before < after:
        what = f"migrated from schema version {before} to {after}"
    else:
        what = f"up to date (schema version {after})"
    click.echo(f"Events database {path.resolve()}: {what}, {events} events.")
