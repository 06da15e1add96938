"""commands.which is shutil.which's POSIX search without importing shutil (check's start-up):
the same answer for the same name and PATH, over real files of each kind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from chronyctl6.effects import commands


@pytest.fixture
def bins(tmp_path: Path) -> Path:
    for d in ("a", "b", "c/dir"):
        (tmp_path / d).mkdir(parents=True)
    for name, mode in (("a/tool", 0o644), ("b/tool", 0o755), ("b/other", 0o755), ("a/x", 0o700)):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(mode)
    (tmp_path / "c/tool").symlink_to(tmp_path / "b/tool")
    (tmp_path / "c/dangling").symlink_to(tmp_path / "nowhere")
    return tmp_path


NAMES = ("tool", "other", "x", "dir", "dangling", "missing", "", "sh", "./tool", "b/tool")


@pytest.mark.parametrize("order", [("a", "b", "c"), ("c", "a", "b"), ("a", "a", "", "c"), ()])
def test_which_answers_as_shutil_does(bins: Path, order: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.pathsep.join(str(bins / d) if d else "" for d in order)
    monkeypatch.chdir(bins)  # a relative name, and an empty PATH entry, mean the working directory
    for name in (*NAMES, str(bins / "b/tool"), str(bins / "a/tool")):
        assert commands._which(name, path) == shutil.which(name, path=path), (name, path)
        monkeypatch.setenv("PATH", path)
        assert commands._which(name, None) == shutil.which(name), (name, path)


def test_which_without_path_uses_the_systems_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATH", raising=False)
    assert commands._which("sh", None) == shutil.which("sh") is not None


def test_which_falls_back_to_sbin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there: sbin and bin are still searched
    assert commands.which("sh") == shutil.which("sh", path="/usr/sbin:/sbin:/usr/bin:/bin") is not None
