"""The ``qstore`` console script: engine commands plus ``serve``."""
from __future__ import annotations

import sys

from qstore import cli

from .cli import add_serve_parser


def main() -> None:
    sys.exit(cli.main(extra=add_serve_parser))
