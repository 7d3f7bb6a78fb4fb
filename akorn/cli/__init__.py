"""The ``akorn`` command: argument parsing only. A subcommand's module is imported when it runs."""
