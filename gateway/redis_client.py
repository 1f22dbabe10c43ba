"""Redis clients with timeouts sized for a gateway, not redis-py's defaults.

redis-py 8 waits up to 5 s for a reply and retries 10 times with back-off up to
a second: a list change would hang for a minute behind a dead Redis. Here every
command has ``GATEWAY_REDIS_TIMEOUT_MS`` to answer and is retried
``GATEWAY_REDIS_RETRIES`` times at once (the next poll retries again); a
connection has ``GATEWAY_REDIS_CONNECT_TIMEOUT_MS`` to open. Checks never wait
on Redis at all: they read the worker's snapshot.

Three kinds of client, each on its own connections:

- :func:`commands`: short commands (publish a change, read the stream's head).
- :func:`blocking`: the follower's ``XREAD BLOCK``, whose reply may take
  :data:`BLOCK_MS` by design; its socket waits that long plus the timeout.
- :func:`transfer`: a synchronous client, used in a thread, for the packed
  snapshot's chunks (megabytes each, so seconds, not milliseconds).

>>> from gateway.settings import Settings
>>> client = commands(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_ms=50))
>>> client.connection_pool.connection_kwargs["socket_timeout"]
0.05
"""

from __future__ import annotations

from typing import Any, Final

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from gateway.settings import Settings

#: How long the follower's XREAD waits for a message before asking again.
BLOCK_MS: Final = 1_000
#: Seconds a chunk of the packed snapshot may take to travel.
TRANSFER_TIMEOUT: Final = 10.0

AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster
SyncClient = redis.Redis | redis.RedisCluster
#: What a failed Redis call raises: the connection's errors and the server's.
REDIS_ERRORS: Final = (redis.RedisError, OSError)


def _options(settings: Settings, timeout: float, *, asyncio: bool = True) -> dict[str, Any]:
    retry = AsyncRetry if asyncio else Retry
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": settings.redis_connect_timeout_ms / 1000,
        "retry": retry(NoBackoff(), settings.redis_retries),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 0,
    }


def _async(settings: Settings, options: dict[str, Any]) -> AsyncClient:
    if settings.redis_cluster:
        return redis.asyncio.RedisCluster.from_url(settings.redis_url, **options)
    return redis.asyncio.Redis.from_url(settings.redis_url, **options)


def commands(settings: Settings) -> AsyncClient:
    """A client for short commands: each answers within the timeout or fails."""
    return _async(settings, _options(settings, settings.redis_timeout_ms / 1000))


def blocking(settings: Settings) -> AsyncClient:
    """A client for ``XREAD BLOCK`` (:data:`BLOCK_MS`): its replies may come that late.
    Not retried: the follower falls back on the store at once and reads again later."""
    timeout = (BLOCK_MS + settings.redis_timeout_ms) / 1000
    return _async(settings, {**_options(settings, timeout), "retry": AsyncRetry(NoBackoff(), 0)})


def transfer(settings: Settings) -> SyncClient:
    """A synchronous client for the snapshot's chunks, used from a thread."""
    timeout = max(settings.redis_timeout_ms / 1000, TRANSFER_TIMEOUT)
    options = _options(settings, timeout, asyncio=False)
    if settings.redis_cluster:
        return redis.RedisCluster.from_url(settings.redis_url, **options)
    return redis.Redis.from_url(settings.redis_url, **options)
