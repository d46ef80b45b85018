"""The distinctions the CLI's exit codes rest on (see ``cli.options``), and the interruption
every long job keeps its partial results on."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The request itself cannot be carried out as asked (a depth the family lacks, a schedule
    whose lr is never reached, a resume of a different run): exit 2, like a bad option. Other
    ValueErrors are problems met while working (a damaged file, too little memory): exit 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or container stop), raised where Ctrl-C would be, so every path
    that keeps partial results on Ctrl-C keeps them on SIGTERM too."""


class UserCodeError(InvalidRequest):
    """A user's code (a factory, its module, a forward) raised or called sys.exit: the message
    names the source and the step it reached; ``details`` holds the traceback, which the CLI
    shows only under --debug."""

    def __init__(self, message: str, details: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.details = details
        self.reason = reason or message  # the user's error alone, e.g. "KeyError: 'x'"
