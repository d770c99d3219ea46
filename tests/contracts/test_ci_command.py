"""CI runs exactly the test command the README gives users (one line they can paste)."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("Run the tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert command is not None and "\n" not in command.group(1), "the README's test command is one line"
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == command.group(1)
    assert "apt-get install -y chromium chromium-driver" in command.group(1)  # the console's browser tests
