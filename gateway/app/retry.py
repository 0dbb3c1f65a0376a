"""Retry throttling per backend (gRPC's retryThrottling): retries only while the backend mostly succeeds.

A token bucket of MAX_TOKENS: each failed call takes one token, each success gives back TOKEN_RATIO;
a retry is allowed only while more than half the bucket is left. Below a failure share of 1/11
(~9 %) the bucket holds; above it, retries stop after a few, so a failing backend gets about one
call per request instead of two (no retry storm). Only what never reached the model is retried at
all (``BackendError.retryable``: the connection failed before anything was sent), and never an
overload answer or a timeout (Google's guidance: RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED are not
retried).
"""

from __future__ import annotations

# gRPC's retryThrottling defaults (A6-client-retries.md): maxTokens 10, tokenRatio 0.1.
MAX_TOKENS = 10.0
TOKEN_RATIO = 0.1


class RetryBudget:
    def __init__(self, max_tokens: float = MAX_TOKENS, token_ratio: float = TOKEN_RATIO):
        self.max_tokens, self.token_ratio = max_tokens, token_ratio
        self.tokens = max_tokens

    def success(self) -> None:
        self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)

    def failure(self) -> None:
        self.tokens = max(0.0, self.tokens - 1.0)

    def allows_retry(self) -> bool:
        return self.tokens > self.max_tokens / 2
