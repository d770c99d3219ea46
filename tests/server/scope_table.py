"""The scope table of docs/PROTOCOL.md, rendered from the operation table and the auth rule."""
from __future__ import annotations

from qstore_client.protocol import OPS
from qstore_server.auth import SCOPES, allows, expand


def render() -> str:
    rows = ["| operation | route | " + " | ".join(SCOPES) + " |", "|---|---|" + "---|" * len(SCOPES)]
    for op in OPS.values():
        marks = ["yes" if allows(expand({scope}), op) else "–" for scope in SCOPES]
        rows.append(f"| `{op.name}` | {op.method} `{op.path}` | " + " | ".join(marks) + " |")
    return "\n".join(rows)
