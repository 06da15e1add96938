"""A newcomer follows the README's first screen on a booted Debian 12 instance, reading no further.

The instance: a stock Debian 12 root (packaging/test-root, cached: chrony, Debian's python3
packages and systemd, not chronyctl6) booted with systemd as init in a simulated dual-stack EC2
instance (systemd-nspawn joined to the instance's own network namespace). The .deb built by
packaging/build-deb is put where the README's install line expects it, and then every line of
"Install on an instance" (the .deb one) and of "Use it" runs as written, in order: a line with
`sudo` as root, a line without it as an unprivileged user (nobody). Each must exit 0: the last
`status` is the healthy one. Nothing races a timer: apply waits until chronyd selects Time Sync and
`wait` until its error bound is within 0.1 s, both conditions asked of chronyd.

The healthy output the README shows must be what the commands print here: the same first line
(numbers aside) and the same lines in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import Ec2
from sandbox.booted import BootedInstance
from tests import readme
from tests.packaging_support import built_deb

# A booted root (systemd-nspawn), the simulated instance's namespaces: root.
pytestmark = [pytest.mark.e2e, pytest.mark.root]
# Where the newcomer stands when typing the README's lines: the .deb was copied here.
HOME = "/root"




def _as_written(vm: BootedInstance, line: str) -> tuple[int, str]:
    """Run one README line in the instance: `sudo X` as root, anything else as user nobody."""
    if line.startswith("sudo "):
        argv = ["sh", "-c", f"cd {HOME} && {line[len('sudo '):]}"]
    else:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sh", "-c",
                f"cd / && {line}"]
    # One stream, in the order written, as a terminal shows it. stdin is not a terminal: apt-get
    # would stop at a question it has to ask (here it has none: Debian's own dependencies are in).
    done = vm.run(["sh", "-c", 'exec "$@" 2>&1 </dev/null', "sh", *argv], timeout=300)
    return done.returncode, done.stdout


def test_the_readme_first_screen_takes_a_newcomer_to_a_healthy_status(
    vm: BootedInstance, ec2_factory: Callable[..., Ec2]
) -> None:
    screen = readme.first_screen()
    deb = built_deb()
    wanted = screen.install_deb.rsplit("/", 1)[1]
    assert deb.name == wanted, f"the README installs {wanted}, packaging/build-deb builds {deb.name}"
    vm.copy_in(deb, f"{HOME}/{deb.name}")
    ec2 = ec2_factory(ipv6=True)
    vm.boot(ec2.instance.netns_path)
    assert vm.run(["dpkg-query", "-W", "chronyctl6"]).returncode != 0, "the root must not have it yet"

    printed: dict[str, str] = {}
    for line in [screen.install_deb, *screen.commands]:
        code, output = _as_written(vm, line)
        print(f"$ {line}\n{output}(exit status {code})")
        assert code == 0, f"{line!r} exited {code}:\n{output}\n{vm.boot_log()[-2000:]}"
        printed[line] = output

    # And doctor, which the first screen offers for anything else, agrees: healthy too.
    code, output = _as_written(vm, "sudo chronyctl6 doctor")
    print(f"$ sudo chronyctl6 doctor\n{output}(exit status {code})")
    assert code == 0, output

    # The healthy output the README shows is what these commands print here.
    assert screen.healthy, "the README shows the healthy output"
    for line, shown in screen.healthy.items():
        assert line in printed, f"the README shows the output of {line!r}, which it does not tell you to run"
        real = printed[line].splitlines()
        assert readme.masked(shown[0]) == readme.masked(real[0]), (shown[0], real[0])
        if readme.cut(shown):  # the README shows the start, and says so
            shown, real = shown[:-1], real[:len(shown) - 1]
            assert len(printed[line].splitlines()) > len(shown), printed[line]
        assert readme.labels(shown) == readme.labels(real), printed[line]
