"""Failures the runner reports with their own exit code and one line (DESIGN.md, contract 4).

The exit code tells an orchestrator *what kind* of failure it was without parsing text:
retrying a bad config is pointless, retrying an unreachable source may help. The codes
and which of them are retried live in the runner contract (`datakits.contract.ExitCode`).
"""

from datakits.contract import ExitCode


class DatakitsError(Exception):
    """Base of every expected failure: its message is the one line a person reads."""

    exit_code: ExitCode = ExitCode.unexpected


class ConfigError(DatakitsError):
    """The spec, argv or env is wrong: retrying will not help."""

    exit_code = ExitCode.permanent


class DependentObjects(ConfigError):
    """The warehouse refuses to drop or alter a bronze table because views or other objects
    depend on it: permanent (they will still be there on a retry) until someone moves them."""


class SourceUnavailable(DatakitsError):
    """The source or warehouse cannot be reached or refuses the credentials."""

    exit_code = ExitCode.unreachable


class LoadFailed(DatakitsError):
    """The load started and was rolled back: bronze is at its last good state."""

    exit_code = ExitCode.load_failed


class WarehouseBusy(DatakitsError):
    """Another load of the same table (or, on DuckDB, of the same warehouse file) held the
    lock for longer than the lock timeout: nothing was written; a later retry may succeed."""

    exit_code = ExitCode.lock_timeout
