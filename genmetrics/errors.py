"""Exceptions that the command line turns into one-line messages (exit code 2)."""

from __future__ import annotations


class GenmetricsError(Exception):
    """Base class: an error the user can fix, with a message that says how."""


class InputError(GenmetricsError):
    """The input files or folders cannot be used as given (unpaired, unreadable, empty)."""


class UsageError(GenmetricsError):
    """An option, metric name or argument is not valid."""


class MetricError(GenmetricsError):
    """A metric could not produce a value (for example: no samples were given)."""


class MetricUnavailable(GenmetricsError):
    """A metric cannot run in this setup (e.g. Inception Score without classifier weights).

    Raised by ``Metric.preflight``; a metric of the default set is then left out and listed
    under the scorecard's ``unavailable`` with the reason, instead of failing the run.
    """
