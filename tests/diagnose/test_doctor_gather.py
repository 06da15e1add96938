"""doctor's gathering for real in the suite's network namespace (loopback only): a host that is
not on EC2 at all, read quickly, with the PTP clock and the distro taken under --root."""

from __future__ import annotations

import time
from pathlib import Path

from chronyctl6.diagnose import doctor, facts
from chronyctl6.diagnose.doctor import Status
from chronyctl6.effects import metadata
from tests.helpers import stock_root


def test_not_on_ec2_is_found_at_once_and_a_name_alone_is_no_phc(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    (root / "dev").mkdir()
    (root / "dev/ptp_ena").touch()
    started = time.monotonic()
    f = facts.gather(facts.Options(root=root, imds_timeout=10.0, imds_total=20.0, ntp_deadline=10.0))
    assert time.monotonic() - started < 5.0  # every failure here is a refusal, not a time-out (10 s)
    assert f.imds_v6 is not None and f.imds_v6.failure is metadata.Failure.UNREACHABLE
    assert f.imds_v4 is not None and f.imds_v4.failure is metadata.Failure.UNREACHABLE
    assert f.metadata is None
    assert f.route_v6.error is not None and f.route_v6.error.startswith("ENETUNREACH")
    assert f.ntp_v6 is not None and f.ntp_v6.kind == "unreachable"
    assert f.ntp_v4 is not None and f.ntp_v4.kind == "unreachable"
    assert f.platform is not None and f.platform.name == "debian"
    # /dev/ptp_ena is a plain file and sysfs names no ENA clock: not a PHC, and doctor says why
    assert f.phc is None
    checks = {c.id: c for c in doctor.run_checks(f)}
    assert checks["ec2"].status is Status.FAIL and "unreachable" in checks["ec2"].evidence
    assert checks["phc"].status is Status.WARN and "no /sys/class/ptp clock is the ENA" in checks["phc"].evidence
    assert checks["route-ipv6"].status is Status.FAIL


def test_route_to_reports_the_source_address_without_sending() -> None:
    loop = facts.route_to("::1")
    assert loop.ok and loop.source == "::1"
    none = facts.route_to("fd00:ec2::123")
    assert not none.ok and none.error is not None and "ENETUNREACH" in none.error
