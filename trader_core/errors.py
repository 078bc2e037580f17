"""One exception tree for the whole toolkit (web3.py style).

Every error a user can cause or fix is a `TraderError`. Subclasses also inherit the matching builtin
(ValueError, RuntimeError, ...) so callers that catch builtins keep working. The CLI prints
`error: <message>` on one line and exits 1; set DEBUG=1 for a traceback.
"""

from __future__ import annotations


class TraderError(Exception):
    """Base of every error raised on purpose by this toolkit.

    `retryable` says whether the same call may succeed later (an RPC hiccup) or never will
    (bad config, insufficient funds).
    """

    retryable: bool = False


class ConfigError(TraderError, ValueError):
    """A setting or argument is invalid; the message names it and the accepted values."""


class DataError(TraderError, ValueError):
    """A market-data file or series is unusable; the message names the row and the problem."""


class DependencyMissing(TraderError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


class StorageError(TraderError, OSError):
    """A file or folder cannot be read or written (full disk, read-only file system, no permission, a file
    where a folder should be); the message names the path and what to do. Nothing half-written is left."""


class ModelError(TraderError, RuntimeError):
    """A trained policy or language model cannot be loaded or used."""


class ChainError(TraderError, RuntimeError):
    """Anything that went wrong talking to the chain."""


class ChainUnavailable(ChainError, ConnectionError):
    """The node does not answer (not started, crashed, wrong URL)."""

    retryable = True


class TransactionFailed(ChainError):
    """A transaction reverted or could not be mined; the message carries the revert reason."""


class TransactionPending(ChainError):
    """A sent transaction was not mined within the wait; it stays journalled `pending` and is reconciled later."""

    retryable = True


class SwapRefused(TraderError, ValueError):
    """A guard refused a swap before anything was signed (risk limit, chain id, bad amount)."""


class LLMError(TraderError, RuntimeError):
    """A language-model backend is unreachable or failed."""

    retryable = True


class MalformedReply(LLMError):
    """The backend answered, but not in the shape asked for (no tool call, invalid JSON): worth one retry on
    the same backend before falling back."""


def require(module: str, extra_hint: str):
    """Import an optional heavy dependency or raise a one-line `DependencyMissing` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyMissing(f"{module} is not installed ({exc}); install it with: {extra_hint}") from exc
