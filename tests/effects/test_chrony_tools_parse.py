"""chronyc's CSV output, as captured from chrony 4.3 (Debian 12), parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronyctl6.effects import chrony_tools
from chronyctl6.errors import CommandFailed

TRACKING = ("CF404DC8,::1,4,1795992827.264142851,-0.000001670,-0.000000045,0.000000323,-0.024,-0.003,"
            "0.072,0.000006893,0.000001094,0.3,Normal\n")
UNSYNC = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n"  # noqa: E501
SOURCES = (
    "^,*,fd00:ec2::123,3,4,377,12,0.000000674,0.000000629,0.000004529\n"
    "#,-,PHC0,0,0,0,-,0.000000000,0.000000000,0.000000000\n"
    "^,?,169.254.169.123,0,4,0,-,0.000000000,0.000000000,0.000000000\n"
)


def test_tracking() -> None:
    t = chrony_tools.parse_tracking(TRACKING)
    assert t.ref_id == "CF404DC8" and t.ref_name == "::1" and t.stratum == 4
    # chronyc printed "0.000001670 seconds fast of NTP time" for this line.
    assert t.system_offset == pytest.approx(-1.670e-6)
    assert t.synchronised
    # chrony's root distance: root delay / 2 + root dispersion, no offset in it.
    assert t.root_distance == pytest.approx(1.094e-6 + 6.893e-6 / 2)
    assert t.max_error == pytest.approx(1.670e-6 + 1.094e-6 + 6.893e-6 / 2)


def test_tracking_unsynchronised() -> None:
    t = chrony_tools.parse_tracking(UNSYNC)
    assert not t.synchronised


def test_sources() -> None:
    s = chrony_tools.parse_sources(SOURCES)
    assert [(x.mode, x.state, x.name, x.reach, x.last_rx) for x in s] == [
        ("^", "*", "fd00:ec2::123", 0o377, 12),
        ("#", "-", "PHC0", 0, None),
        ("^", "?", "169.254.169.123", 0, None),
    ]
    assert s[0].selected and not s[1].selected
    assert s[0].reachability_ratio == 1.0 and s[2].reachability_ratio == 0.0


@pytest.mark.parametrize("text", ["", "a,b\n", TRACKING + TRACKING, TRACKING.replace("-0.024", "x")])
def test_tracking_garbage(text: str) -> None:
    with pytest.raises(CommandFailed):
        chrony_tools.parse_tracking(text)


@pytest.mark.parametrize("text", ["^,*,x\n", "^,*,a,3,4,9z9,0,0,0,0\n"])
def test_sources_garbage(text: str) -> None:
    with pytest.raises(CommandFailed):
        chrony_tools.parse_sources(text)


def test_a_candidate_outside_the_image_is_neither_read_nor_written_beside(tmp_path: Path) -> None:
    """validate_config for an image judges only files inside it: the instance's own path given by
    mistake (/etc/chrony/chrony.conf, this host's file) is refused before any chronyd runs and
    before a temporary file could be written beside it."""
    image = tmp_path / "image"
    (image / "etc/chrony").mkdir(parents=True)
    outside = tmp_path / "host-etc" / "chrony.conf"
    outside.parent.mkdir()
    outside.write_text("server 192.0.2.1\n")
    never = chrony_tools.Validator(("/nonexistent/chronyd",), "4.3", str(image))
    with pytest.raises(CommandFailed, match="outside the image"):
        chrony_tools.validate_config(str(outside), root=str(image), using=never)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["chrony.conf"]
