"""Names shared by `ionto`'s command modules (cli.py and records/cli.py): the exit codes and
the help formatter, in one place so that neither module imports the other for them."""

from __future__ import annotations

import argparse

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2
EXIT_SAFETY = 3
EXIT_INSTRUMENT = 4
EXIT_STOPPED = 5
EXIT_INTERRUPTED = 130


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help text as written (examples keep their lines), options aligned a little wider."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)
