"""Small shared helpers for tests that run the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES, REPO


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real chronyctl6 as a separate process."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "chronyctl6", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)


def cli_json(*args: str) -> dict[str, Any]:
    """The `data` of a command's chronyctl6/v1 envelope (validated against the shipped schema)."""
    from tests.contract import envelope

    done = cli(*args, "-o", "json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = envelope(done, args[0])["data"]
    return result


def stock_root(tmp_path: Path, distro: str, name: str | None = None) -> Path:
    root = tmp_path / (name or distro)
    shutil.copytree(FIXTURES / "stock" / distro, root, symlinks=True)  # absolute links stay in the image
    return root


def write_settings(root: Path, text: str) -> Path:
    path = root / "etc/chronyctl6/settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
