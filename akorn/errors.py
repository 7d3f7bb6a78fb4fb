"""Errors a user can fix: the command line prints them on one line and exits with code 2."""


class UserError(ValueError):
    """Bad input from the user: a config key, a path, a file's contents."""
