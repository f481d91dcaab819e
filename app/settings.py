"""Service settings: one pydantic-settings class read from RNNMT_* environment variables, built on first use.

Nothing is read at import time. `get_settings()` is cached; tests and `create_app(settings)` pass their own
object instead, which the app keeps on `app.state` for the `SettingsDep` dependency.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.keys import default_keys_db

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "released-models"


class Settings(BaseSettings):
    """Everything the HTTP service can be tuned with; each field is also the env variable RNNMT_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="RNNMT_", extra="ignore")

    models_dir: Path = Field(DEFAULT_MODELS_DIR, description="folder of model folders (or one model folder)")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$", description="auto | cpu | cuda")
    threads: int = Field(0, ge=0, description="torch intra-op threads (0 = torch's default)")
    precision: str = Field("fp32", pattern="^(fp32|bf16|int8|auto)$",
                           description="what the decoder computes in: fp32 | bf16 (CPUs with native bf16) | int8 | "
                                       "auto (the fastest this CPU supports)")

    # Micro-batching: sentences of concurrent requests are decoded together.
    max_batch_tokens: int = Field(2000, ge=1, description="source tokens per decode call")
    max_batch_sentences: int = Field(64, ge=1, description="sentences per decode call (1 = no batching)")
    max_wait_ms: float = Field(5.0, ge=0.0, description="how long the oldest sentence may wait for company")
    regroup_ms: float = Field(50.0, ge=0.0, description="after a batch, how long to wait for the clients it "
                              "answered to send again (only while they have not)")
    max_queue: int = Field(1024, ge=1, description="pending sentences per model before 503")
    request_timeout_s: float = Field(30.0, gt=0.0, description="per-request deadline: 503 at once when the "
                                     "expected wait in the queue exceeds it, 504 when it passes while queued")
    shutdown_grace_s: float = Field(20.0, gt=0.0, description="after SIGTERM, how long requests in flight may "
                                    "take to finish before they are cancelled (the container's stop timeout "
                                    "must be longer)")

    # Request limits, checked at the edge.
    max_chars: int = Field(5000, ge=1, description="characters per text (413 beyond)")
    max_texts: int = Field(64, ge=1, description="texts per request (413 beyond)")

    cache_size: int = Field(4096, ge=0, description="translated sentences kept in the LRU cache (0 = off)")

    # Access control and fair use (see app/access.py and app/keys.py).
    keys_db: Path = Field(default_factory=default_keys_db, description="SQLite file of API keys (rnnmt keys)")
    require_api_key: bool = Field(False, description="401 for requests without a key (403 for a bad one)")
    limits_storage: str = Field("memory://", pattern="^(memory|redis|rediss|redis\\+unix)://",
                                description="where quotas are counted: memory:// (this process) or "
                                "redis://host:6379 (shared by every replica)")
    anonymous_requests_per_minute: int | None = Field(None, ge=1, description="per client address, "
                                                      "for requests without a key (unset = unlimited)")
    anonymous_chars_per_minute: int | None = Field(None, ge=1, description="per client address")
    anonymous_chars_per_day: int | None = Field(None, ge=1, description="per client address")
    max_queue_per_client: int = Field(512, ge=1, description="pending sentences one client (key or address) "
                                      "may hold in a model's queue before 503")
    shared_batch_sentences: int = Field(8, ge=1, description="sentences per decode call while several "
                                        "clients wait (smaller batches keep each client's latency low)")

    # Document translation (app/documents/, app/files.py).
    max_file_bytes: int = Field(2 * 1024 * 1024, ge=1, description="bytes per uploaded document (413 beyond)")
    max_file_chars: int = Field(100_000, ge=1, description="characters of text per document (413 beyond)")
    file_ttl_s: float = Field(600.0, gt=0.0, description="seconds a translated document stays downloadable "
                              "from /libretranslate/download_file")
    files_dir: Path | None = Field(None, description="where translated documents wait for download "
                                   "(None = <system temp>/rnnmt-files; share it between workers)")

    glossary_dir: Path | None = Field(None, description="folder of SRC-TGT.tsv glossaries (source term<TAB>target "
                                      "term), applied to every request of that pair")

    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from a "
                                    "browser (CORS); empty = none (same-origin only), [\"*\"] = any")

    metrics_token: str | None = Field(None,
                                      description="when set, GET /metrics requires 'Authorization: Bearer <token>'")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
