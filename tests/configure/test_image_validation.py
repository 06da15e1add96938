"""apply --root validates with the image's own chronyd (chrooted, `-p`: parse only) where it runs
here, else with this host's; it says which, and a rejected line is reported with where it came from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chronyctl6.configure import platforms, render
from chronyctl6.effects import chrony_tools
from chronyctl6.effects.commands import which
from tests import chrony_roots
from tests.conftest import FIXTURES, require
from tests.helpers import apply_root, cli, cli_json, stock_root

CONF = "etc/chrony/chrony.conf"
IMAGE_46 = "chronyd 4.6.1 from the image"


@pytest.fixture
def image(chrony_root: Callable[[str], Path], tmp_path: Path) -> Path:
    """A real Debian 13 root (its own chrony 4.6.1 package, its packaged chrony.conf), this test's
    own copy of the session's unpacked one."""
    image = chrony_roots.copy_of(chrony_root("debian13"), tmp_path)
    assert (image / CONF).read_bytes() == (FIXTURES / "stock/debian13" / CONF).read_bytes()
    return image


def host_version() -> str:
    require(which("chronyd") is not None, "chronyd is not installed (apt-get install chrony)")
    version = chrony_tools.chronyd_version()
    assert version is not None
    return ".".join(map(str, version))


@pytest.mark.root  # chroot into an unpacked Debian root
def test_debian13_image_is_validated_by_its_own_chronyd(image: Path) -> None:
    assert (image / CONF).read_bytes() == (FIXTURES / "stock/debian13" / CONF).read_bytes()
    result = cli_json("apply", "--root", str(image), "--ipv6", "on")
    assert result["validated"] is True
    assert result["validated_by"] == IMAGE_46
    text = (image / CONF).read_text()
    assert "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n" in text
    assert "\nleapseclist" not in text


@pytest.mark.root  # chroot into an unpacked Debian root
def test_a_line_only_the_images_chrony_reads_passes(image: Path) -> None:
    """`ptpdomain` is chrony 4.5+: this host's 4.3 would refuse it, the image's 4.6 takes it."""
    require(host_version().startswith("4.3"), "this test's proof needs a host chronyd older than 4.5")
    conf = image / CONF
    conf.write_text(conf.read_text() + "ptpdomain 0\n")
    done = apply_root(image, "--ipv6", "on")
    assert f"validated by {IMAGE_46}" in done.stdout
    assert "\nptpdomain 0\n" in conf.read_text()


@pytest.mark.root  # chroot into an unpacked Debian root
def test_a_rejected_operator_line_is_reported_as_the_operators(image: Path) -> None:
    conf = image / CONF
    before = conf.read_text() + "hwtimestamp eth0 rxfilter sometimes\n"
    conf.write_text(before)
    done = cli("apply", "--root", str(image), "--ipv6", "on")
    assert done.returncode == 1
    lineno = before.count("\n")  # the file and the line the operator wrote it on
    assert f"{IMAGE_46} rejects `hwtimestamp eth0 rxfilter sometimes`, line {lineno} of the existing " \
           "/etc/chrony/chrony.conf, carried over into the new file" in done.stderr
    assert f"fix or remove line {lineno} in /etc/chrony/chrony.conf" in done.stderr
    assert "settings.toml" not in done.stderr
    assert conf.read_text() == before  # nothing written


@pytest.mark.root  # chroot into an unpacked Debian root
def test_an_image_chronyd_behind_an_absolute_link_is_the_images(image: Path) -> None:
    """/usr/sbin/chronyd -> /usr/sbin/chronyd.real means the image's file, never this host's."""
    binary = image / "usr/sbin/chronyd"
    real = image / "usr/sbin/chronyd.real"
    assert not Path("/usr/sbin/chronyd.real").exists()
    binary.rename(real)
    binary.symlink_to("/usr/sbin/chronyd.real")
    try:
        validator = chrony_tools.validator(str(image))
        assert validator is not None and validator.description == IMAGE_46
    finally:
        binary.unlink()
        real.rename(binary)


@pytest.mark.root  # chroot into an unpacked Debian root
def test_an_image_chronyd_that_cannot_run_here_leaves_it_to_the_host(image: Path) -> None:
    """Another architecture's binary (here: bytes no kernel runs) is not an error: the host's
    chronyd validates, and says so."""
    version = host_version()
    binary = image / "usr/sbin/chronyd"
    saved = binary.read_bytes()
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    try:
        validator = chrony_tools.validator(str(image))
        assert validator is not None and validator.description == f"chronyd {version} from this host"
    finally:
        binary.write_bytes(saved)


def test_a_root_without_chronyd_is_validated_by_this_host(tmp_path: Path) -> None:
    version = host_version()
    root = stock_root(tmp_path, "debian12")
    result = cli_json("apply", "--root", str(root), "--ipv6", "on")
    assert result["validated_by"] == f"chronyd {version} from this host"


def test_a_stock_leapseclist_judged_by_host_chrony_43_blames_the_stock_file(tmp_path: Path) -> None:
    """Debian 13's stock `leapseclist` (chrony 4.6+) before chrony 4.3: the message says the line is
    the distribution's and the hint never sends the operator to settings.toml. The takeover drops an
    active leapseclist, so the candidate is built here as a render that kept it would be."""
    require(host_version() == "4.3", "the host chronyd must be 4.3 (Debian 12)")
    platform = platforms.BY_NAME["debian"]
    line = "leapseclist /usr/share/zoneinfo/leap-seconds.list"
    text = "server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4\n\n# stock\n" + line + "\nrtcsync\n"
    rendered = render.Rendered(text=text, dropped=(), carried=(), stock=(line, "rtcsync"))
    root = stock_root(tmp_path, "debian13")
    candidate = root / "etc/chrony/.chrony.conf.candidate"
    candidate.write_text(text)
    done = chrony_tools.validate_config(str(candidate), root=str(root))
    assert not done.ok and done.validator.description == "chronyd 4.3 from this host"
    assert done.rejected_in_candidate == 4
    message, hint = render.explain_rejection(rendered, platform, platform.config_path,
                                             done.validator.description, done.rejected_at(),
                                             done.rejected_in_candidate)
    assert message == f"chronyd 4.3 from this host rejects `{line}`, a line of Debian's stock chrony.conf"
    assert "settings.toml" not in hint and "image's own chronyd" in hint


def test_a_rejected_settings_line_points_at_settings(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    (root / "etc/chronyctl6").mkdir(parents=True)
    (root / "etc/chronyctl6/settings.toml").write_text("directives = ['makestep never ever']\n")
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 1
    assert "rejects `makestep never ever`, from settings.toml" in done.stderr
    assert "check the settings.toml value" in done.stderr


def test_a_rejected_line_of_an_included_file_names_that_file(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    (root / "etc/chrony/conf.d/broken.conf").write_text("# operator\nnotadirective 1\n")
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 1
    assert "rejects line 2 of " in done.stderr and "broken.conf" in done.stderr
    assert "chronyctl6 does not write that file" in done.stderr



@pytest.mark.root  # chroot into an unpacked Debian root
def test_the_images_chronyd_judges_the_drop_ins_as_apply_leaves_them(image: Path) -> None:
    """The chrooted chronyd reads the candidate tree inside the image: a drop-in's pool line apply
    comments out is judged commented out; a line it leaves and chronyd rejects is named as the
    instance sees its file."""
    dropin = image / "etc/chrony/conf.d/zz-test.conf"
    try:
        dropin.write_text("pool 0.debian.pool.ntp.org iburst\nhwtimestamp eth0 rxfilter sometimes\n")
        done = cli("apply", "--root", str(image), "--ipv6", "on")
        assert done.returncode == 1
        assert f"{IMAGE_46} rejects line 2 of /etc/chrony/conf.d/zz-test.conf, a file the configuration " \
               "includes" in done.stderr
        assert "at line 2 in file /etc/chrony/conf.d/zz-test.conf" in done.stderr  # the file as it is now
        assert str(image) not in done.stderr and ".chronyctl6-" not in done.stderr
        assert dropin.read_text().startswith("pool 0.debian.pool.ntp.org iburst\n")  # nothing written
        dropin.write_text("pool 0.debian.pool.ntp.org iburst\nmaxclockerror 50\n")
        result = cli_json("apply", "--root", str(image), "--ipv6", "on")
        assert result["validated_by"] == IMAGE_46
        assert "/etc/chrony/conf.d/zz-test.conf" in result["files"]
        assert "# pool 0.debian.pool.ntp.org iburst\n" in dropin.read_text()
        assert not list(image.glob("etc/chrony/.*chronyctl6-*"))  # no candidate or tree left
    finally:
        dropin.unlink(missing_ok=True)


@pytest.mark.root  # chroot into an unpacked Debian root
def test_restore_validates_with_the_images_chronyd_too(image: Path) -> None:
    """restore's validate step is apply's: the stock file's leapseclist (chrony 4.6+) comes back and
    the image's 4.6.1 judges it, where this host's 4.3 would refuse it."""
    require(host_version().startswith("4.3"), "this test's proof needs a host chronyd older than 4.6")
    assert cli("apply", "--root", str(image), "--ipv6", "on").returncode == 0
    done = cli("restore", "--root", str(image), "--original")
    assert done.returncode == 0, done.stderr
    assert (image / CONF).read_bytes() == (FIXTURES / "stock/debian13" / CONF).read_bytes()
    assert not list(image.glob("etc/chrony/.*chronyctl6-*"))  # no candidate or tree left
