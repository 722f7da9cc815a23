"""The recorder's bulk writes on PostgreSQL: COPY through psycopg 3 (`cursor.copy`).

Row-by-row INSERTs (even executemany) cost a round of parsing and planning per row; COPY streams
the rows in one statement, which is what lets a PostgreSQL store keep up with a training loop
(bench/bench_store.py --db URL measures it beside raw psycopg COPY). The rows arrive already in the
shape the SQLite fast path executes: JSON as text, NaN and ±inf as None (stored as NULL).

The COPY runs on the SQLAlchemy connection's own psycopg connection, so it belongs to the flush's
transaction: it commits or rolls back with the rest of the batch.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

METRICS = "COPY metrics (run_id, key, step, value, wall_time) FROM STDIN"
EPISODES = 'COPY episodes (id, run_id, "index", phase, "return", length, step, wall_time, has_trajectory, oracle_score) FROM STDIN'
STEPS = "COPY steps (episode_id, t, state, action, reward, done, extras) FROM STDIN"


def usable(conn: Any) -> bool:
    """True for a SQLAlchemy connection to PostgreSQL through psycopg 3 (the driver COPY needs)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def copy_rows(conn: Any, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    """Stream `rows` (tuples in the statement's column order; None is NULL) through COPY."""
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        write = copy.write_row
        for row in rows:
            write(row)


def reserve_ids(conn: Any, table: str, n: int) -> list[int]:
    """`n` fresh ids from `table`'s id sequence, for rows COPY writes with their ids (so the
    episodes' steps can name them without a round trip per episode)."""
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table, n)
        )
        return [row[0] for row in cursor.fetchall()]
