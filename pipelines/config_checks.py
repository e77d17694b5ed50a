"""Checks the settings need before pydantic sees a value, and the one way secrets in URIs are shown.

- `mask_uri`: `postgresql://trader:s3cret@db:5432/x` -> `postgresql://trader:***@db:5432/x`; a user
  without a password (a token used as user name) and secret-looking query parameters (`password`,
  `token`, `key`, ...) are masked too. Everything that prints a URI (`alphatide settings`, the serve
  banner, the chain summary) goes through it.
- `check_uri`: a URI variable (MLflow, Redis, a DSN) is parsed and checked for its scheme, host, port
  and database, with a message naming the variable and showing the URI masked.
- `check_json_variables`: list and mapping variables must be JSON (`["BTC/USDT","ETH/USDT"]`);
  pydantic-settings would otherwise fail with a traceback naming only the top-level section.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel

SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "pass", "token", "secret", "key", "sig", "signature", "auth")
MASK = "***"


@typing.overload
def mask_uri(uri: str) -> str: ...
@typing.overload
def mask_uri(uri: None) -> None: ...
def mask_uri(uri: str | None) -> str | None:
    """The URI with its credentials replaced by `***` (unparseable text is masked whole after the scheme)."""
    if uri is None:
        return None
    try:
        parts = urlsplit(uri)
        netloc, query = parts.netloc, parts.query
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user, has_password, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            masked = [(k, MASK if any(s in k.lower() for s in SECRET_QUERY_KEYS) else v) for k, v in pairs]
            query = urlencode(masked, safe="*")
        if (netloc, query) == (parts.netloc, parts.query):
            return uri  # nothing secret (urlunsplit would also turn sqlite:////abs into sqlite://abs)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        scheme, sep, _ = uri.partition("://")
        return f"{scheme}{sep}{MASK}" if sep else MASK


# scheme -> (needs a host, needs a database/path)
URI_RULES: dict[str, dict[str, tuple[bool, bool]]] = {
    "mlflow": {
        "sqlite": (False, True), "file": (False, True), "http": (True, False), "https": (True, False),
        "postgresql": (True, True), "postgresql+psycopg": (True, True), "postgresql+psycopg2": (True, True),
        "mysql": (True, True), "mysql+pymysql": (True, True), "databricks": (False, False),
    },
    "redis": {"redis": (True, False), "rediss": (True, False), "unix": (False, True)},
    "dsn": {"postgresql": (True, True), "postgres": (True, True), "sqlite": (False, True)},
}


def check_uri(value: str, kind: str, variable: str) -> str:
    """`value` unchanged when it is a well-formed URI of `kind` (`mlflow`, `redis`, `dsn`); else ValueError
    with a readable reason naming `variable` (the URI shown masked)."""
    rules = URI_RULES[kind]
    shown = mask_uri(value)
    examples = {
        "mlflow": "sqlite:///path/mlflow.db, http://host:5000 or postgresql://user:pw@host:5432/db",
        "redis": "redis://:password@127.0.0.1:6379/0",
        "dsn": "postgresql://user:pw@127.0.0.1:5432/alphatide",
    }
    if not value.strip():
        raise ValueError(f"{variable} is empty (e.g. {examples[kind]})")
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValueError(f"{variable}={shown} is not a valid URI ({exc}); e.g. {examples[kind]}") from None
    scheme = parts.scheme.lower()
    if scheme not in rules:
        raise ValueError(
            f"{variable}={shown}: scheme {scheme or '(none)'!r} is not one of {', '.join(rules)} "
            f"(e.g. {examples[kind]})"
        )
    needs_host, needs_path = rules[scheme]
    if needs_host and not parts.hostname:
        raise ValueError(f"{variable}={shown} names no host (e.g. {examples[kind]})")
    if needs_path and parts.path.strip("/") == "":
        raise ValueError(f"{variable}={shown} names no database or file (e.g. {examples[kind]})")
    if kind == "redis" and scheme != "unix" and parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise ValueError(f"{variable}={shown}: the Redis database must be a number (/0), not {parts.path!r}")
    if port == 0:
        raise ValueError(f"{variable}={shown}: port 0 is not a port")
    return value


def _is_complex(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_complex(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin in (list, tuple, dict, set, frozenset):
        return True
    return isinstance(annotation, type) and issubclass(annotation, (BaseModel, list, tuple, dict, set))


def _field_annotation(model: type[BaseModel], path: list[str]) -> Any:
    fields = {name.lower(): info for name, info in model.model_fields.items()}
    info = fields.get(path[0].lower())
    if info is None:
        return None
    annotation = info.annotation
    if len(path) == 1:
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _field_annotation(annotation, path[1:])
    return None


def check_json_variables(environ: Mapping[str, str], settings_model: type[BaseModel], prefix: str) -> list[str]:
    """Problems with list/mapping variables that are not JSON, one readable line each."""
    problems = []
    for key, raw in environ.items():
        if not key.upper().startswith(prefix):
            continue
        path = key[len(prefix):].split("__")
        annotation = _field_annotation(settings_model, path)
        if annotation is None or not _is_complex(annotation):
            continue
        try:
            json.loads(raw)
        except ValueError:
            problems.append(
                f"{key.upper()}: not JSON: {raw[:60]!r}; lists and tables are written as JSON, "
                'e.g. ["BTC/USDT","ETH/USDT"] or {"USDT": 5e6}'
            )
    return problems
