"""The `ionto` command line."""

from __future__ import annotations

import argparse

from ionto_instruments import __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ionto` console script."""
    parser = argparse.ArgumentParser(prog="ionto", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ionto {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
