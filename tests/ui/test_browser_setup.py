"""Without Chromium the console's browser tests fail, saying how to install it (never a silent skip)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.browser import chromium_paths


def test_a_missing_browser_fails_and_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to find
    monkeypatch.delenv("QSTORE_CHROMIUM", raising=False)
    monkeypatch.delenv("QSTORE_CHROMEDRIVER", raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"chromium and chromedriver not found: .*"
                                                    r"apt-get install -y chromium chromium-driver"):
        chromium_paths()
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    with pytest.raises(pytest.fail.Exception, match=r"^chromedriver not found"):
        chromium_paths()
