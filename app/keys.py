"""API keys: a small SQLite store that the `rnnmt keys` commands write and the service reads.

A key is `rnnmt_` + 32 random bytes (URL-safe base64), shown once when it is made. Only its SHA-256 is stored:
the key is random and long, so a plain hash cannot be reversed or guessed (a slow password hash would add
milliseconds to every request for nothing). A key has a unique name (what logs and metrics show, never the
key), optional limits (None = unlimited) and, once revoked, the time of revocation.

The service opens the file read-only and looks each key up when a request comes in, so keys added, changed
or revoked by `rnnmt keys` (another process, even on another replica sharing the file) count from the next
request, without a restart. Writers take SQLite's lock; a reader waits up to `busy_timeout_s` for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from model.errors import InputError

log = logging.getLogger(__name__)

KEY_PREFIX = "rnnmt_"
SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_start TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    requests_per_minute INTEGER,
    chars_per_minute INTEGER,
    chars_per_day INTEGER
)
"""
LIMIT_FIELDS = ("requests_per_minute", "chars_per_minute", "chars_per_day")


def default_keys_db() -> Path:
    """$RNNMT_KEYS_DB, else $XDG_DATA_HOME/rnnmt/keys.sqlite (~/.local/share/rnnmt/keys.sqlite)."""
    if os.environ.get("RNNMT_KEYS_DB"):
        return Path(os.environ["RNNMT_KEYS_DB"])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "rnnmt" / "keys.sqlite"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Limits:
    """Per-caller quotas; None means unlimited."""

    requests_per_minute: int | None = None
    chars_per_minute: int | None = None
    chars_per_day: int | None = None


@dataclass(frozen=True)
class KeyRecord:
    name: str
    key_start: str  # the first characters of the key, to recognise it in a list
    created_at: float
    revoked_at: float | None
    limits: Limits

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(name=row["name"], key_start=row["key_start"], created_at=row["created_at"],
                     revoked_at=row["revoked_at"], limits=Limits(*(row[f] for f in LIMIT_FIELDS)))


class KeyStore:
    """The keys file. Management methods create it; the service's `lookup` never does."""

    def __init__(self, path: Path, busy_timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # ---- management (the `rnnmt keys` commands) -------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (each statement is its own transaction), closed afterwards."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(SCHEMA)
            yield conn
        finally:
            conn.close()

    def add(self, name: str, limits: Limits) -> str:
        """Make a key for a new name; returns the key (the only time it is ever seen)."""
        if not name or not name.isprintable() or len(name) > 64:
            raise InputError(f"a key name must be 1-64 printable characters, got {name!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._connect() as conn:
            try:
                conn.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
                             (name, hash_key(key), key[:10], time.time(), *_limit_values(limits)))
            except sqlite3.IntegrityError:
                raise InputError(f"a key named {name!r} exists already (names stay taken after revocation); "
                             "pick another name") from None
        return key

    def list(self) -> list[KeyRecord]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            return [_record(row) for row in conn.execute("SELECT * FROM api_keys ORDER BY created_at")]

    def revoke(self, name: str) -> None:
        with self._connect() as conn:
            changed = conn.execute("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                                   (time.time(), name)).rowcount
        if not changed:
            raise InputError(f"no active key named {name!r} in {self.path}")

    def set_limits(self, name: str, limits: Limits) -> None:
        """Replace the limits of a key (None = unlimited)."""
        with self._connect() as conn:
            changed = conn.execute("UPDATE api_keys SET requests_per_minute = ?, chars_per_minute = ?, "
                                   "chars_per_day = ? WHERE name = ?", (*_limit_values(limits), name)).rowcount
        if not changed:
            raise InputError(f"no key named {name!r} in {self.path}")

    # ---- the service ---------------------------------------------------------------------------

    def lookup(self, key: str) -> KeyRecord | None:
        """The record of a key (revoked ones too), or None when unknown or when no keys file exists yet."""
        with self._lock:
            if self._reader is None:
                if not self.path.exists():
                    return None
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._reader = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_s,
                                               check_same_thread=False, isolation_level=None)
                self._reader.row_factory = sqlite3.Row
            try:
                row = self._reader.execute("SELECT * FROM api_keys WHERE key_hash = ?", (hash_key(key),)).fetchone()
            except sqlite3.OperationalError as exc:  # e.g. the file exists but holds no table yet
                log.warning("keys file %s: %s", self.path, exc)
                return None
        return _record(row) if row is not None else None

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _limit_values(limits: Limits) -> tuple[int | None, ...]:
    values = tuple(getattr(limits, f) for f in LIMIT_FIELDS)
    for field, value in zip(LIMIT_FIELDS, values):
        if value is not None and value < 1:
            raise InputError(f"{field.replace('_', '-')} must be a positive integer (omit it for no limit)")
    return values
