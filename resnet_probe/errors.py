"""The one distinction the CLI's exit codes rest on (see ``cli.options``)."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The request itself cannot be carried out as asked (a depth the family lacks, a schedule
    whose lr is never reached, a resume of a different run): exit 2, like a bad option. Other
    ValueErrors are problems met while working (a damaged file, too little memory): exit 1."""
