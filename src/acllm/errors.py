"""Two error roots: the caller's mistake (UserError) and a backend's failure (ServiceError).

The CLI maps them to exit codes 2 and 3, the service to their ``status`` (4xx and 5xx).
"""

from __future__ import annotations


class AcllmError(Exception):
    """Base of every error acllm raises on purpose."""

    exit_code = 1
    status = 500

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UserError(AcllmError):
    """Bad input or configuration: the caller can fix it."""

    exit_code = 2
    status = 400


class NotFoundError(UserError):
    """The named thing (model, assistant, job, answer) does not exist (HTTP 404)."""

    status = 404


class PayloadTooLargeError(UserError):
    """A request body over the service's configured limit (HTTP 413)."""

    status = 413


class UnauthorizedError(UserError):
    """No API key, or one that is unknown or revoked (HTTP 401)."""

    status = 401


class ForbiddenError(UserError):
    """A valid key whose scopes do not cover this route or assistant (HTTP 403)."""

    status = 403


class OverBudgetError(UserError):
    """A key spent its requests- or tokens-per-minute budget (HTTP 429, retry after)."""

    status = 429

    def __init__(self, message: str, *, retry_after: float, hint: str = "") -> None:
        super().__init__(message, hint=hint or f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class ConfigError(UserError):
    """The config file or an ACLLM_* variable is invalid; ``key`` names the bad setting."""

    def __init__(self, key: str, message: str, *, hint: str = "") -> None:
        super().__init__(f"config key '{key}': {message}", hint=hint)
        self.key = key


class ContextOverflowError(UserError):
    """A prompt does not fit the model's context window. Never silently cut."""

    status = 413

    def __init__(self, needed: int, window: int, *, what: str = "prompt") -> None:
        over = needed - window
        super().__init__(
            f"{what} needs {needed} tokens but the context window holds {window}: "
            f"{over} tokens too many",
            hint="shorten the input, lower max_tokens, or use a model with a larger window",
        )
        self.needed = needed
        self.window = window
        self.over = over


class MissingExtraError(UserError):
    """An optional backend's dependencies are not installed."""

    def __init__(self, backend: str, extra: str) -> None:
        super().__init__(
            f"backend '{backend}' needs packages that are not installed",
            hint=f"pip install 'acllm[{extra}]'",
        )


class ServiceError(AcllmError):
    """A backend failed (model server, database, weights on disk). Not the caller's fault."""

    exit_code = 3
    status = 502
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        status: int | None = None,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        if status is not None:
            self.status = status
        self.body = body
        self.retry_after = retry_after


class RetryableError(ServiceError):
    """A failure worth retrying: 429, 5xx, time-out, dropped connection."""

    retryable = True


class RateLimitedError(RetryableError):
    status = 429


class UpstreamTimeoutError(RetryableError):
    status = 504


class UnavailableError(RetryableError):
    """No upstream can take the request now (budgets spent, circuits open)."""

    status = 503
