"""The ``qstore`` console script: engine commands plus ``serve`` and ``participants``."""
from __future__ import annotations

import sys
from typing import Any

from qstore import cli

from .cli import add_serve_parser


def _extra(subparsers: Any) -> None:
    from qstore.federated.command import add_participants_parser

    add_serve_parser(subparsers)
    add_participants_parser(subparsers)


def main() -> None:
    sys.exit(cli.main(extra=_extra))
