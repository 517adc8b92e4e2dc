"""Database layer: SQLAlchemy 2.0 models, engine and sessions, crud functions and Alembic migrations."""
