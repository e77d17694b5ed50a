"""The two exception roots of alphatide.

`RetryableError`: something outside us failed transiently (network, rate limit, venue busy). Airflow
retries the task; a live loop backs off and tries again.

`OperatorError`: retrying cannot help (bad configuration, failed data validation, a leaked model). The
task fails at once with a message a person can act on.
"""

from __future__ import annotations


class AlphatideError(Exception):
    """Base of every error alphatide raises on purpose."""


class RetryableError(AlphatideError):
    """Transient failure: retry with backoff."""


class OperatorError(AlphatideError):
    """Needs a person: fail fast with a readable message."""


class ConfigError(OperatorError):
    """Configuration is missing or invalid."""


class DataValidationError(OperatorError):
    """A batch failed its data-validation gate (it has been quarantined)."""


class SourceUnavailableError(RetryableError):
    """A market-data source could not be reached or answered with a transient error."""
