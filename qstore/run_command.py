"""One way to run a ``qstore`` subcommand's coroutine: its result shown on success (exit 0), a
typed error as one line on stderr (exit 2), Ctrl-C as one line saying what was kept (exit 130)."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from qstore.errors import QStoreError

T = TypeVar("T")


def run_command(command: str, main: Coroutine[Any, Any, T], show: Callable[[T], None],
                interrupted: str = "nothing unfinished was kept") -> int:
    try:
        result = asyncio.run(main)
    except QStoreError as exc:
        print(f"qstore {command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qstore {command}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    show(result)
    return 0
