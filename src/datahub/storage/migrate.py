"""Schema migrations with Alembic, located without an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import datahub
from datahub.config import Settings
from datahub.storage import db, privacy


def _script_location() -> Path:
    package = Path(datahub.__file__).resolve().parent
    for candidate in (package / "migrations", package.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("migrations/ not found beside the datahub package")


def alembic_config(settings: Settings) -> Config:
    """Build the Alembic configuration for the configured database."""
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    url = settings.conninfo.replace("postgresql://", "postgresql+psycopg://", 1)
    # Alembic's config is an INI parser: a '%' in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate the database up to `revision`, then store the configured public id key."""
    command.upgrade(alembic_config(settings), revision)
    key = settings.privacy.public_id_key
    if key is not None:
        with db.connect(settings) as conn:
            if privacy.get_key_pads(conn) is not None:
                privacy.set_key(conn, key=key.get_secret_value().encode())


def downgrade(settings: Settings, revision: str) -> None:
    """Migrate the database down to `revision` ("base" drops everything)."""
    command.downgrade(alembic_config(settings), revision)
