"""Errors a user can cause. Each message is one sentence naming the file, key, tensor or option at
fault and, where there is one, what would fix it."""

from __future__ import annotations


class K2nbError(Exception):
    """Base of every error k2nb raises on purpose."""


class ConfigError(K2nbError, ValueError):
    """A config.json key is missing, malformed or names something k2nb does not support."""


class CheckpointError(K2nbError):
    """A checkpoint folder or file is missing, truncated, corrupt or does not match its config."""


class TokenizerError(K2nbError):
    """A tokenizer file is missing or malformed, or text cannot be encoded as asked."""


class GenerationError(K2nbError, ValueError):
    """A generation option is out of range or inconsistent."""
