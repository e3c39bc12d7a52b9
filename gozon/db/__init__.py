"""PostgreSQL: the only package that imports asyncpg."""

from gozon.db.database import DB_DOWN, Database, Unavailable, open_database

__all__ = ["DB_DOWN", "Database", "Unavailable", "open_database"]
