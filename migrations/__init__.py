"""Alembic migrations; `linli init` runs them (see bot/database.py)."""
