"""The shared Redis of the machine (127.0.0.1:6379) for the online-store tests; they skip without it."""

from __future__ import annotations

import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
