"""User-facing errors.

Every problem caused by what the user sent (a config, an array, a URL, a reply from a board)
is raised as a :class:`UserError`. The command line prints its message as one line on stderr
and exits with status 2; nothing else in the project prints tracebacks for bad input.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user. ``str(err)`` is the one line shown to them."""

    exit_code = 2


class ConfigError(UserError):
    """A config file that cannot be loaded: ``FILE: field.path: problem (allowed: ...)``."""


class ArrayError(UserError):
    """An input array whose name, shape, dtype or values do not fit the unit's formats."""
