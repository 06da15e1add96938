"""One traversal in chronyd's order, inside an image root, against hostile trees built in tmp_path."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from chronyctl6.chronyconf import traversal
from chronyctl6.effects import commands, configtree, files
from tests.conftest import require


def put(root: Path, path: str, text: str | bytes) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)
    return target


def order(tree: traversal.ConfigTree) -> list[str]:
    return [f"{d.file}:{d.directive.normalized}" for d in tree.directives]


def test_chronyds_order_include_confdir_then_sourcedirs_last(tmp_path: Path) -> None:
    put(tmp_path, "/etc/chrony.conf",
        "sourcedir /etc/s1\nserver a.example\ninclude /etc/inc/*.conf\nconfdir /etc/c1 /etc/c2\nserver z.example\n")
    put(tmp_path, "/etc/inc/b.conf", "maxclockerror 2\n")
    put(tmp_path, "/etc/inc/a.conf", "maxclockerror 1\n")
    put(tmp_path, "/etc/inc/.hidden.conf", "maxclockerror 99\n")  # glob's * skips dot files
    put(tmp_path, "/etc/inc/B.conf", "maxclockerror 0\n")  # byte order: upper case first
    put(tmp_path, "/etc/c2/x.conf", "log c2x\n")  # x.conf also in c1: c1's wins
    put(tmp_path, "/etc/c1/x.conf", "log c1x\n")
    put(tmp_path, "/etc/c2/a.conf", "log c2a\n")
    put(tmp_path, "/etc/s1/n.sources", "server n.example\nallow all\n")
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert order(tree) == [
        "/etc/chrony.conf:sourcedir /etc/s1",
        "/etc/chrony.conf:server a.example",
        "/etc/chrony.conf:include /etc/inc/*.conf",
        "/etc/inc/B.conf:maxclockerror 0",
        "/etc/inc/a.conf:maxclockerror 1",
        "/etc/inc/b.conf:maxclockerror 2",
        "/etc/chrony.conf:confdir /etc/c1 /etc/c2",
        "/etc/c2/a.conf:log c2a",
        "/etc/c1/x.conf:log c1x",
        "/etc/chrony.conf:server z.example",
        "/etc/s1/n.sources:server n.example",  # only sources count in a .sources file
    ]
    assert tree.problems == () and tree.missing == ()
    assert tree.directives[3].via == "include /etc/inc/*.conf in /etc/chrony.conf:3"


def test_absolute_symlinks_are_followed_inside_the_root(tmp_path: Path) -> None:
    put(tmp_path, "/usr/share/conf/real.conf", "include /etc/inc.conf\n")
    put(tmp_path, "/etc/inc.conf", "maxclockerror 7\n")
    (tmp_path / "etc/chrony.conf").symlink_to("/usr/share/conf/real.conf")
    os.symlink("/usr/share/srcs", tmp_path / "etc/srcdir")
    put(tmp_path, "/usr/share/srcs/a.sources", "server s.example\n")
    put(tmp_path, "/etc/chrony.conf.d/x", "")
    with open(tmp_path / "usr/share/conf/real.conf", "a") as f:
        f.write("sourcedir /etc/srcdir\n")
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert [d.directive.normalized for d in tree.directives] == [
        "include /etc/inc.conf", "maxclockerror 7", "sourcedir /etc/srcdir", "server s.example"]


def test_a_link_pointing_at_a_host_file_reads_the_images_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/chrony.conf").symlink_to("/etc/passwd")  # the image's /etc/passwd, not ours
    put(tmp_path, "/etc/passwd", "server image.example\n")
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert [d.directive.normalized for d in tree.directives] == ["server image.example"]
    (tmp_path / "etc/passwd").unlink()
    assert configtree.load("/etc/chrony.conf", tmp_path).missing == ("/etc/chrony.conf",)


def test_dotdot_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "img"
    put(root, "/etc/chrony.conf", "include /../../../etc/passwd\nconfdir /etc/d\n")
    (root / "etc/d").mkdir()
    os.symlink("../../../../../../../../etc", root / "etc/d/up.conf")
    tree = configtree.load("/etc/chrony.conf", root)
    assert len(tree.problems) == 2
    assert "/../../../etc/passwd (include /../../../etc/passwd in /etc/chrony.conf:1): leads out of" in \
        tree.problems[0]
    assert "/etc/d/up.conf" in tree.problems[1] and "leads out of" in tree.problems[1]
    assert [d.file for d in tree.directives] == ["/etc/chrony.conf", "/etc/chrony.conf"]


def test_symlink_loops_and_include_loops_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/b", tmp_path / "etc/a")
    os.symlink("/etc/a", tmp_path / "etc/b")
    put(tmp_path, "/etc/chrony.conf", "include /etc/a\ninclude /etc/self.conf\n")
    put(tmp_path, "/etc/self.conf", "include /etc/self.conf\n")
    started = time.monotonic()
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert time.monotonic() - started < 2
    assert any("/etc/a" in p and "symbolic links" in p for p in tree.problems)
    assert any("/etc/self.conf" in p and "loop" in p for p in tree.problems)


def test_deep_nesting_stops_at_chronyds_level(tmp_path: Path) -> None:
    for i in range(12):
        put(tmp_path, f"/etc/n{i}.conf", f"include /etc/n{i + 1}.conf\n")
    put(tmp_path, "/etc/n12.conf", "log x\n")
    tree = configtree.load("/etc/n0.conf", tmp_path)
    assert len(tree.files) == 10
    assert tree.problems and "more than 10 levels" in tree.problems[0]


@pytest.mark.parametrize("where", ["main", "include", "confdir", "sourcedir"])
def test_a_fifo_anywhere_is_refused_without_hanging(tmp_path: Path, where: str) -> None:
    put(tmp_path, "/etc/chrony.conf", "include /etc/inc.conf\nconfdir /etc/c\nsourcedir /etc/s\n")
    for d in ("etc/c", "etc/s"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    target = {"main": "etc/chrony.conf", "include": "etc/inc.conf", "confdir": "etc/c/f.conf",
              "sourcedir": "etc/s/f.sources"}[where]
    (tmp_path / target).unlink(missing_ok=True)
    os.mkfifo(tmp_path / target)
    started = time.monotonic()
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert time.monotonic() - started < 2
    (problem,) = tree.problems
    assert problem.startswith(f"/{target}") and "is a FIFO, not a regular file" in problem
    if where != "main":
        assert "/etc/chrony.conf:" in problem  # how it was reached


def test_include_of_a_device_or_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc/d").mkdir(parents=True)
    put(tmp_path, "/etc/chrony.conf", "include /dev/zero\ninclude /etc/d\n")
    os.symlink("/dev/zero", tmp_path / "etc/z")
    tree = configtree.load("/etc/chrony.conf", Path("/"), main_data=b"include /dev/zero\n")
    assert tree.problems == ("/dev/zero (include /dev/zero in /etc/chrony.conf:1) is a character device, "
                             "not a regular file: refused",)
    image = configtree.load("/etc/chrony.conf", tmp_path)  # the image has no /dev/zero: missing there
    assert image.missing == ("/dev/zero",)
    assert "/etc/d (include /etc/d in /etc/chrony.conf:2) is a directory" in image.problems[0]


def test_dangling_symlinks_in_drop_in_directories(tmp_path: Path) -> None:
    put(tmp_path, "/etc/chrony.conf", "confdir /etc/c\nsourcedir /etc/s\n")
    put(tmp_path, "/etc/s/ok.sources", "server ok.example\n")
    (tmp_path / "etc/c").mkdir()
    os.symlink("/nowhere/x.sources", tmp_path / "etc/s/gone.sources")
    os.symlink("/nowhere/x.conf", tmp_path / "etc/c/gone.conf")
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert tree.problems == ()
    assert tree.missing == ("/etc/c/gone.conf",)  # chronyd exits on it; a .sources one it skips
    assert [d.directive.normalized for d in tree.sources()] == ["server ok.example"]


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    put(tmp_path, "/etc/chrony.conf", "include /etc/big.conf\n")
    with open(tmp_path / "etc/big.conf", "wb") as f:
        f.truncate(files.MAX_READ + 1)
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert "over the" in tree.problems[0] and tree.problems[0].startswith("/etc/big.conf (include")


def test_more_than_256_dropins_are_all_read(tmp_path: Path) -> None:
    """chronyd reads every drop-in of a confdir; so does the traversal (issue 18: 256 was a cap)."""
    put(tmp_path, "/etc/chrony.conf", "confdir /etc/c\n")
    for i in range(300):
        put(tmp_path, f"/etc/c/{i:04}.conf", f"log x{i}\n")
    tree = configtree.load("/etc/chrony.conf", tmp_path)
    assert tree.problems == ()
    assert len(tree.files) == 301
    assert tree.directives[-1].directive.normalized == "log x299"


class Memory:
    """traversal.Reader over plain data: the traversal is pure, so no filesystem is needed."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.reads = 0

    def read(self, shown: str, how: str = "") -> bytes | None:
        self.reads += 1
        return self.files.get(shown)

    def listdir(self, directory: str) -> list[str]:
        prefix = directory.rstrip("/") + "/"
        return [name[len(prefix):] for name in self.files if name.startswith(prefix) and "/" not in name[len(prefix):]]

    def exists(self, shown: str) -> bool:
        return shown in self.files


def test_an_include_that_fans_out_is_bounded_and_said_once() -> None:
    """Ten levels of twenty includes each would be 20**9 files: reading stops at the bound."""
    tree_files = {f"/etc/l{i}.conf": f"include /etc/l{i + 1}.conf\n".encode() * 20 for i in range(9)}
    tree_files["/etc/l9.conf"] = b"log x\n"
    reader = Memory(tree_files)
    tree = traversal.load("/etc/l0.conf", reader, max_files=500)
    assert len(tree.files) == 500 and reader.reads == 500
    assert len(tree.problems) == 1 and "not read" in tree.problems[0] and "500 files" in tree.problems[0]
    assert traversal.MAX_FILES >= 10_000  # far above any real configuration


def test_the_traversal_reads_only_through_its_reader() -> None:
    reader = Memory({"/etc/chrony.conf": b"confdir /etc/c\ninclude /etc/i/*.conf\nserver a.example\n",
                     "/etc/c/b.conf": b"log b\n", "/etc/c/a.conf": b"log a\n", "/etc/c/skip.txt": b"log no\n",
                     "/etc/i/z.conf": b"log z\n"})
    tree = traversal.load("/etc/chrony.conf", reader)
    assert order(tree) == ["/etc/chrony.conf:confdir /etc/c", "/etc/c/a.conf:log a", "/etc/c/b.conf:log b",
                           "/etc/chrony.conf:include /etc/i/*.conf", "/etc/i/z.conf:log z",
                           "/etc/chrony.conf:server a.example"]


def test_chronyd_reads_the_same_files_in_the_same_order(tmp_path: Path) -> None:
    """The live traversal (root /) against chronyd -p on the very same tree."""
    require(commands.which("chronyd") is not None, "chronyd is not installed")
    base = tmp_path / "t"
    put(base, "/main.conf", f"include {base}/inc/*.conf\nconfdir {base}/c1 {base}/c2\nmaxclockerror 9\n")
    put(base, "/inc/b.conf", "logbanner 2\n")
    put(base, "/inc/B.conf", "logbanner 1\n")
    put(base, "/c2/x.conf", "logdir /c2x\n")
    put(base, "/c1/x.conf", "logdir /c1x\n")
    put(base, "/c2/a.conf", "dumpdir /c2a\n")
    done = subprocess.run(["chronyd", "-p", "-u", "root", "-f", str(base / "main.conf")], capture_output=True,
                          text=True, timeout=15, check=False)
    assert done.returncode == 0, done.stderr
    tree = configtree.load(str(base / "main.conf"))
    ours = [d.directive.normalized for d in tree.directives if d.directive.keyword not in ("include", "confdir")]
    assert done.stdout.split("\n")[:-1] == ours
