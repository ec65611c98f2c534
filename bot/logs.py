"""Logs carry ids, never names, texts or SQL parameters (DESIGN.md "Security").

Our own log lines name updates, people and reports by id. Some libraries log what passes through
them when the root level is DEBUG (an operator's `[log] level = "DEBUG"`): SQLAlchemy every
result row, aiosqlite every call with its parameters, python-telegram-bot every Bot API call and
every update, texts and names included. Those loggers are held at a level where they say
nothing of the sort, unless the operator set a level on them explicitly. SQL statements are
still there to see with `[database] echo = true`, their parameters hidden.
"""

from __future__ import annotations

import logging

QUIET = {
    "sqlalchemy.engine": logging.WARNING,
    "aiosqlite": logging.INFO,
    "telegram": logging.INFO,
}


def keep_private() -> None:
    for name, level in QUIET.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)
