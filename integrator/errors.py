"""One exception hierarchy for the core; each error carries a stable code the CLI maps to an exit status."""

from __future__ import annotations


class IntegratorError(Exception):
    """Base of every error the core raises on purpose."""

    code = "integrator_error"
    exit_status = 1

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(IntegratorError):
    """The caller gave something malformed; nothing was stored or changed."""

    code = "invalid_input"
    exit_status = 2


class ConfigError(InvalidInput):
    code = "invalid_config"


class StoreError(InvalidInput):
    """The database cannot be used (corrupt, not SQLite, newer schema); it was left untouched."""

    code = "store_unusable"


class StoreBusy(IntegratorError):
    """Another process held the database's write lock longer than we wait: nothing changed, try again.

    Its own exit status (75, EX_TEMPFAIL) so a script can tell "retry later" from bad input.
    """

    code = "store_busy"
    exit_status = 75


class DuplicateConflict(InvalidInput):
    """An event with the same idempotency key but different content already exists."""

    code = "idempotency_conflict"


class IllegalTransition(IntegratorError):
    """A queue status change outside the DAG: a bug, never silently ignored."""

    code = "illegal_transition"


class StaleState(IntegratorError):
    """A compare-and-set found the row in another state than expected (someone else moved it)."""

    code = "stale_state"


class LeaseLost(IntegratorError):
    """Our lease token is gone or expired: stop before any further write."""

    code = "lease_lost"


class GitError(IntegratorError):
    """A git command failed; who is to blame depends on what it was doing (see ``workflow``)."""

    code = "git_error"

    def __init__(self, message: str, *, command: list[str], stderr: str) -> None:
        super().__init__(message)
        self.command = command
        self.stderr = stderr


class Refused(IntegratorError):
    """A well-formed request the current state does not allow (resume with nothing changed, cutover gate)."""

    code = "refused"
    exit_status = 1
