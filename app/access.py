"""Who is calling, and may they: API keys, then per-caller quotas counted with the `limits` library.

`Access.identify(request, api_key)` runs first on every translation request, `Access.spend(caller, chars)`
once the request is known to be valid, before any translation work:

1. The key comes from `Authorization: Bearer KEY`, `X-API-Key: KEY` or LibreTranslate's `api_key` field. A
   key that is unknown or revoked gets 403; no key gets 401 when RNNMT_REQUIRE_API_KEY is set, otherwise the
   caller is anonymous and identified by its address (uvicorn's client address; behind a proxy, set
   FORWARDED_ALLOW_IPS to the proxy's address so that uvicorn takes the client's from X-Forwarded-For).
2. The caller's limits (the key's, or RNNMT_ANONYMOUS_*) are spent in a sliding-window counter: requests per
   minute (cost 1) and characters per minute and per day (cost = characters). Over a limit: 429 with
   Retry-After and the RateLimit-Limit/-Remaining/-Reset headers (the IETF draft's three fields, for the
   tightest limit), which successful answers carry too. The counters are the library's sliding-window
   counters: two numbers per caller and limit (also in Redis), exact within a clock minute (or day); across
   the edge the previous window's count is weighted by the share of it still inside the sliding window,
   which assumes its requests were spread evenly.

Storage: memory:// counts per process; redis://... is shared by every worker and replica. When Redis cannot
be reached the service fails open: it serves without counting (a warning in the log, and
rnnmt_rate_limit_storage_errors_total counts it), because a translation service that stops when its quota
store blips punishes every client for an operator's problem. Keys themselves never depend on Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from fastapi import Request
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from app.errors import ApiError
from app.keys import KeyStore, Limits
from app.metrics import ANONYMOUS, Metrics
from app.settings import Settings

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 0.5  # a quota check must not hold a request for long when Redis is slow or gone


@dataclass(frozen=True)
class Caller:
    """An identified caller: `name` labels metrics (the key's name, never the key); `client` keys the quotas
    and the batcher's fair queuing ("key:NAME" or "ip:ADDRESS")."""

    name: str
    client: str
    limits: Limits


def presented_key(request: Request, api_key: str | None = None) -> str | None:
    """The key a request carries, if any: Authorization: Bearer, X-API-Key, then the api_key field."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key") or api_key or None


class Access:
    """Keys and quotas for one app (on app.state); one limiter shared by every route."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.keys = KeyStore(settings.keys_db)
        self.anonymous_limits = Limits(settings.anonymous_requests_per_minute, settings.anonymous_chars_per_minute,
                                       settings.anonymous_chars_per_day)
        uri = settings.limits_storage
        self.remote = not uri.startswith("memory://")
        options = {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S} if self.remote else {}
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(uri, **options))
        self._last_storage_warning = 0.0

    def identify(self, request: Request, api_key: str | None = None) -> Caller:
        """The caller, or 401/403."""
        key = presented_key(request, api_key)
        if key is None:
            if self.settings.require_api_key:
                self.metrics.key_rejections.inc(ANONYMOUS, "key_required")
                raise ApiError(401, "api_key_required", "this service requires an API key: send "
                               "'Authorization: Bearer KEY', 'X-API-Key: KEY' or the api_key field",
                               {"WWW-Authenticate": "Bearer"})
            address = request.client.host if request.client else "unknown"
            return Caller(ANONYMOUS, f"ip:{address}", self.anonymous_limits)
        record = self.keys.lookup(key)
        if record is None:
            self.metrics.key_rejections.inc("invalid", "invalid_key")
            raise ApiError(403, "invalid_api_key", "the API key is not valid")
        if not record.active:
            self.metrics.key_rejections.inc(record.name, "revoked_key")
            raise ApiError(403, "revoked_api_key", f"the API key {record.name!r} has been revoked")
        return Caller(record.name, f"key:{record.name}", record.limits)

    async def spend(self, caller: Caller, chars: int) -> dict[str, str]:
        """Spend the caller's quotas for one request of `chars` characters (after the request was found
        valid, so that a refused request costs nothing); returns the RateLimit-* headers for the answer.
        Raises ApiError 429."""
        spend = self._items(caller.limits, chars)
        headers: dict[str, str] = {}
        if spend:
            headers = await asyncio.to_thread(self._spend, caller, spend) if self.remote else self._spend(caller, spend)
        self.metrics.key_requests.inc(caller.name)
        self.metrics.key_characters.inc(caller.name, amount=chars)
        return headers

    @staticmethod
    def _items(limits: Limits, chars: int) -> list[tuple[RateLimitItem, int]]:
        items: list[tuple[RateLimitItem, int]] = []
        if limits.requests_per_minute:
            items.append((RateLimitItemPerMinute(limits.requests_per_minute, namespace="requests"), 1))
        if limits.chars_per_minute:
            items.append((RateLimitItemPerMinute(limits.chars_per_minute, namespace="chars"), chars))
        if limits.chars_per_day:
            items.append((RateLimitItemPerDay(limits.chars_per_day, namespace="chars"), chars))
        return items

    def _spend(self, caller: Caller, spend: list[tuple[RateLimitItem, int]]) -> dict[str, str]:
        """Test every limit, then spend them all (so a refused request costs nothing); 429 on the first that
        would overflow. Fails open when the storage is unreachable."""
        try:
            for item, cost in spend:
                if not self.limiter.test(item, caller.client, cost=cost):
                    self._refuse(caller, item, cost)
            for item, cost in spend:
                self.limiter.hit(item, caller.client, cost=cost)
            return self._headers(caller, spend)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - any storage failure: serve without counting
            self.metrics.limiter_errors.inc()
            now = time.monotonic()
            if now - self._last_storage_warning > 10.0:
                self._last_storage_warning = now
                log.warning("quota storage %s failed (%s: %s); serving without quotas until it is back",
                            self.settings.limits_storage.split("@")[-1], type(exc).__name__, exc)
            return {}

    def _refuse(self, caller: Caller, item: RateLimitItem, cost: int) -> None:
        stats = self.limiter.get_window_stats(item, caller.client)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        what = "requests" if item.namespace == "requests" else "characters"
        per = "day" if item.GRANULARITY.name == "day" else "minute"
        self.metrics.key_rejections.inc(caller.name, "rate_limited")
        if cost > item.amount:
            message = f"this request has {cost} {what}, more than the {item.amount} per {per} allowed"
        else:
            message = f"{what} quota of {item.amount} per {per} is spent; retry in {retry} s"
        raise ApiError(429, "rate_limited", message, {
            "Retry-After": str(retry), "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(stats.remaining), "RateLimit-Reset": str(retry)})

    def _headers(self, caller: Caller, spend: list[tuple[RateLimitItem, int]]) -> dict[str, str]:
        """RateLimit-* of the tightest limit (the smallest remaining share)."""
        best: tuple[float, dict[str, str]] | None = None
        now = time.time()
        for item, _ in spend:
            stats = self.limiter.get_window_stats(item, caller.client)
            share = stats.remaining / item.amount
            if best is None or share < best[0]:
                best = (share, {"RateLimit-Limit": str(item.amount), "RateLimit-Remaining": str(stats.remaining),
                                "RateLimit-Reset": str(max(0, math.ceil(stats.reset_time - now)))})
        return best[1] if best else {}

    def close(self) -> None:
        self.keys.close()
