"""What chronyctl6 keeps so that every change can be undone, under /var/lib/chronyctl6 (under
--root for images):

- `original/`: each file as the distribution shipped it, kept once, at first takeover, for good
  (`restore --original`). `original/manifest.json` says
  which paths existed then (a path that did not is removed on restore).
- `history/<sequence>-<UTC stamp>/`: the previous version of every file one apply changed, with a
  manifest; the last KEEP entries are kept (`restore` takes the newest). Ordered by the sequence
  number, never by the clock: this tool corrects clocks, and a clock stepped back must not make
  `restore` pick an older change. (Entries named by a bare stamp, from earlier versions, count as
  older than every numbered one.)
- `state.json`: the choices given on the command line (intent), read by later runs.

Every file here is written atomically; reads are bounded and hostile content is ignored. Under
--root every path here, the state directory itself included, is resolved inside the root (an
absolute link is taken under the root again, `..` out of it is refused): nothing is read from,
written to or deleted on the build host. Nothing is ever deleted through a link.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from chronyctl6.effects import files
from chronyctl6.filestate import FileState

STATE_DIR = "/var/lib/chronyctl6"
KEEP = 10
_NUMBERED = re.compile(r"([0-9]{1,18})-")
MAX_MANIFEST = 1 << 20


Saved = FileState  # one file as it was: the record the planners compare (chronyctl6/filestate.py)


def lock_directory(root: Path) -> Path:
    """Where apply and restore take their lock (files.locked): the state directory, 0700 and
    root's on a host (the unit's StateDirectory), resolved inside an image under --root. Not the
    configuration directory, which every local user can open (and flock), and not /run/chronyctl6,
    which chronyd must be able to read (the boot step's sourcedir)."""
    return Store(root).base


def capture(path: Path, shown: str) -> Saved:
    """Read a file with its mode and owner, refusing what is not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Saved(shown, None)
    if stat.S_ISLNK(st.st_mode):
        return Saved(shown, None, link=os.readlink(path))
    if not stat.S_ISREG(st.st_mode):
        raise files.WriteFailed(f"{path} is not a regular file; chronyctl6 will not replace it")
    # The one bounded reader (files.read_bounded): the file itself, never through a symlink.
    data = files.read_bounded(path, shown, follow=False)
    if data is None:  # gone since the lstat
        return Saved(shown, None)
    return Saved(shown, data, st.st_mode & 0o7777, st.st_uid, st.st_gid)


def put_back(path: Path, saved: Saved) -> None:
    """Make path what `saved` says: the same bytes, mode and owner, or absent."""
    if saved.link is not None:
        tmp = path.with_name(f".{path.name}{files.TEMP_MARK}link.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(saved.link)
        tmp.replace(path)
        files.fsync_dir(path.parent)
        return
    if saved.data is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            files.fsync_dir(path.parent)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write(path, saved.data, meta=(saved.mode, saved.uid, saved.gid))


class Store:
    """The state directory of one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Resolved inside the root (an image's /var/lib may be an absolute symlink): read and
        # written there, never on the build host.
        self.base = self._at()

    def _at(self, *parts: str) -> Path:
        """A path of the state directory, as the instance sees it, resolved inside the root."""
        shown = "/".join((STATE_DIR, *(p.strip("/") for p in parts)))
        return files.resolve_in_root(self.root, shown, how=" (chronyctl6's state directory)")

    # ---- original ---------------------------------------------------------------------

    def keep_original(self, saved: Saved) -> bool:
        """At first takeover only; never overwritten. True when kept now."""
        manifest = self._manifest("original")
        if saved.shown in manifest:
            return False
        if saved.data is not None:
            _store_copy(self.root, self._at("original", saved.shown), saved)
        manifest[saved.shown] = _meta(saved)
        _write_json(self.root, self._at("original", "manifest.json"), manifest)
        return True

    def originals(self) -> list[Saved]:
        return self._load("original")

    # ---- history ------------------------------------------------------------------------

    def record(self, saved: list[Saved]) -> Path:
        """One history entry holding the previous versions; the oldest beyond KEEP go."""
        # The stamp is for people; the order is the sequence number (see the module's docstring).
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{self._next_number():08d}-{stamp}"
        for item in saved:
            if item.data is not None:
                _store_copy(self.root, self._at("history", name, item.shown), item)
        _write_json(self.root, self._at("history", name, "manifest.json"), {s.shown: _meta(s) for s in saved})
        entry = self._at("history", name)
        history = self._at("history")
        for old in self.entries()[:-KEEP] + self._incomplete(entry):
            files.remove_tree(old, below=history)  # refuses a link anywhere below the history directory
        return entry

    def _listing(self) -> list[Path]:
        """The real directories in history/ (a link there is never ours: skipped, never followed)."""
        directory = self._at("history")
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [directory / n for n in names if stat.S_ISDIR(_lmode(directory / n))]

    def _next_number(self) -> int:
        numbers = [int(m.group(1)) for p in self._listing() if (m := _NUMBERED.match(p.name))]
        return max(numbers, default=0) + 1

    def _incomplete(self, keep: Path) -> list[Path]:
        """Entries a killed run left without a manifest (called under the lock)."""
        return [p for p in self._listing() if p != keep and not _is_file(p / "manifest.json")]

    def entries(self) -> list[Path]:
        """History entries, oldest first by sequence number (complete ones only: the manifest is
        written last)."""
        return sorted((p for p in self._listing() if _is_file(p / "manifest.json")), key=_order)

    def previous(self) -> list[Saved]:
        entries = self.entries()
        return self._load("history", entries[-1].name) if entries else []

    # ---- intent -------------------------------------------------------------------------

    def intent(self) -> tuple[dict[str, Any], str | None]:
        """The recorded choices, and a warning when the state file is unreadable."""
        path = self._at("state.json")
        data, problem = _read_json(path)
        intent = data.get("intent") if isinstance(data, dict) else None
        if problem is None and data is not None and not isinstance(intent, dict):
            problem = f"{path}: no intent table"
        return (intent if isinstance(intent, dict) else {}), problem

    def save_intent(self, intent: dict[str, Any]) -> bool:
        """Record the choices; False when they were already recorded."""
        path = self._at("state.json")
        data, _ = _read_json(path)
        data = data if isinstance(data, dict) else {}
        if data.get("intent") == intent:
            return False
        data["intent"] = intent
        _write_json(self.root, path, data)
        return True

    def last_boot(self) -> dict[str, Any]:
        data, _ = _read_json(self._at("state.json"))
        last = data.get("last_boot") if isinstance(data, dict) else None
        return last if isinstance(last, dict) else {}

    def save_last_boot(self, choice: dict[str, Any]) -> None:
        path = self._at("state.json")
        data, _ = _read_json(path)
        data = data if isinstance(data, dict) else {}
        if data.get("last_boot") != choice:
            data["last_boot"] = choice
            _write_json(self.root, path, data)

    # ---- reading an entry -----------------------------------------------------------------

    def _manifest(self, *directory: str) -> dict[str, Any]:
        data, _ = _read_json(self._at(*directory, "manifest.json"))
        return data if isinstance(data, dict) else {}

    def _load(self, *directory: str) -> list[Saved]:
        out = []
        for shown, meta in sorted(self._manifest(*directory).items()):
            if (not isinstance(shown, str) or not shown.startswith("/") or ".." in shown.split("/")
                    or any(c in shown for c in "\x00\n\r")):
                continue  # never follow a hostile manifest out of the root
            if not isinstance(meta, dict):
                continue
            if not meta.get("existed"):
                out.append(Saved(shown, None))
                continue
            if isinstance(meta.get("link"), str):
                out.append(Saved(shown, None, link=meta["link"]))
                continue
            # Resolved inside the root, like every state path: a link in original/ or history/
            # never hands a build host's file to restore.
            copy = self._at(*directory, shown)
            saved = capture(copy, shown)
            if saved.data is None:
                raise files.WriteFailed(f"{copy} is missing: the kept copy of {shown} is gone")
            numbers = [n for n in (meta.get(k) for k in ("mode", "uid", "gid"))
                       if isinstance(n, int) and not isinstance(n, bool)]
            if len(numbers) != 3:
                raise files.WriteFailed(f"{self._at(*directory)}/manifest.json: bad mode or owner for {shown}")
            out.append(Saved(shown, saved.data, numbers[0] & 0o7777, numbers[1], numbers[2]))
        return out


def _lmode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def _is_file(path: Path) -> bool:
    """A regular file, not a link to one."""
    return stat.S_ISREG(_lmode(path))


def _order(entry: Path) -> tuple[int, int, str]:
    match = _NUMBERED.match(entry.name)
    return (1, int(match.group(1)), entry.name) if match else (0, 0, entry.name)


def _meta(saved: Saved) -> dict[str, Any]:
    if saved.link is not None:
        return {"existed": True, "link": saved.link}
    if saved.data is None:
        return {"existed": False}
    return {"existed": True, "mode": saved.mode, "uid": saved.uid, "gid": saved.gid}


def _store_copy(root: Path, path: Path, saved: Saved) -> None:
    assert saved.data is not None
    # Private: a configuration may hold keys (ntsserverkey paths, cmdallow lists).
    _write(root, path, saved.data)


def _write_json(root: Path, path: Path, data: Any) -> None:
    _write(root, path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _write(root: Path, path: Path, data: bytes) -> None:
    path = files.inside(root, path)  # before mkdir too: never create directories outside the root
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.atomic_write(path, data, meta=(0o600, -1, -1))


def _read_json(path: Path) -> tuple[Any, str | None]:
    """Bounded: a FIFO, a huge file or garbage is a warning, never a hang or a crash."""
    try:
        # The one bounded reader, never through a symlink; a FIFO is looked at, never opened.
        data = files.read_bounded(path, limit=MAX_MANIFEST, follow=False)
    except files.Unreadable as exc:
        return None, exc.message
    if data is None:
        return None, None
    try:
        return json.loads(data.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"{path} is not JSON ({exc.__class__.__name__})"
