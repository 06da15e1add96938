"""apply and restore refuse an image whose chronyd unit reads another configuration file (`-f` in
its environment file, issue 18 item 4): nothing is written for a file chronyd does not read."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import apply_root, cli, stock_root

CONF = "etc/chrony/chrony.conf"


def test_apply_refuses_a_unit_that_reads_another_file(tmp_path: Path) -> None:
    root = stock_root(tmp_path, "debian12")
    before = (root / CONF).read_bytes()
    (root / "etc/default").mkdir(parents=True, exist_ok=True)
    (root / "etc/default/chrony").write_text('DAEMON_OPTS="-F 1 -f /etc/chrony/site.conf"\n')
    done = cli("apply", "--root", str(root), "--ipv6", "on")
    assert done.returncode == 2, done.stdout + done.stderr
    assert ("DAEMON_OPTS in /etc/default/chrony makes chronyd read /etc/chrony/site.conf, "
            "not /etc/chrony/chrony.conf") in done.stderr
    assert (root / CONF).read_bytes() == before
    assert not (root / "var/lib/chronyctl6").exists()
    (root / "etc/default/chrony").write_text('DAEMON_OPTS="-F 1"\n')
    apply_root(root, "--ipv6", "on")
    (root / "etc/default/chrony").write_text('DAEMON_OPTS="-f /srv/chrony.conf"\n')
    refused = cli("restore", "--root", str(root), "--original")
    assert refused.returncode == 2 and "makes chronyd read /srv/chrony.conf" in refused.stderr
