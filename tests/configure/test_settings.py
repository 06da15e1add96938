from __future__ import annotations

import pytest

from chronyctl6.configure import settings
from chronyctl6.errors import BadInput


def test_defaults_give_the_aws_line_options() -> None:
    s = settings.parse("")
    assert s.timesync_options == ("prefer", "iburst", "minpoll 4", "maxpoll 4")
    assert (s.ipv6, s.phc, s.at_boot, s.service_manager) == ("auto", "auto", False, "auto")


def test_full_settings() -> None:
    s = settings.parse(
        """
        distro = "debian"
        ipv6 = "on"
        phc = "off"
        at_boot = true
        service_manager = "direct"
        wait = 30
        directives = ["maxclockerror 50", "log tracking"]
        [timesync]
        minpoll = 3
        maxpoll = 5
        [[servers]]
        host = "time.aws.com"
        options = ["iburst", "maxpoll 10"]
        [[pools]]
        host = "2001:DB8::5"
        options = ["maxsources 2", "maxdelay 0.5"]
        """
    )
    assert s.timesync_options == ("prefer", "iburst", "minpoll 3", "maxpoll 5")
    assert [x.line for x in s.extra_sources] == [
        "server time.aws.com iburst maxpoll 10",
        "pool 2001:db8::5 maxsources 2 maxdelay 0.5",
    ]
    assert s.directives == ("maxclockerror 50", "log tracking")
    assert s.wait == 30


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("ipv6 = 'maybe'", "ipv6"),
        ("phc = 1", "phc"),
        ("bogus = 1", "bogus"),
        ("at_boot = 'yes'", "at_boot"),
        ("[timesync]\nminpoll = 25", "timesync.minpoll"),
        ("[timesync]\nminpoll = -7", "timesync.minpoll"),
        ("[timesync]\nminpoll = 6\nmaxpoll = 4", "timesync.minpoll"),
        ("[timesync]\nminpoll = 4.5", "timesync.minpoll"),
        ("[timesync]\nburst = true", "timesync.burst"),
        ("[[servers]]\nhost = 'bad host'", "servers[0].host"),
        ("[[servers]]\nhost = '-x.example'", "servers[0].host"),
        ("[[servers]]\nhost = 'a.example\\nserver evil'", "servers[0].host"),
        ("[[servers]]\nhost = 'a.example'\noptions = ['maxpoll 99']", "servers[0].options[0]"),
        ("[[servers]]\nhost = 'a.example'\noptions = ['iburst 3']", "servers[0].options[0]"),
        ("[[servers]]\nhost = 'a.example'\noptions = ['prefer\\tpool evil']", "servers[0].options[0]"),
        ("[[servers]]\nhost = 'a.example'\noptions = ['rm -rf']", "servers[0].options[0]"),
        ("[[servers]]\nhost = 'a.example'\noptions = 'iburst'", "servers[0].options"),
        ("[[pools]]\nhost = 'a.example'\nport = 1", "pools[0]"),
        ("directives = ['server x']", "directives[0]"),
        ("directives = ['leapsectz right/UTC']", "directives[0]"),
        ("directives = ['frobnicate 1']", "directives[0]"),
        ('directives = ["log tracking\\nserver evil"]', "directives[0]"),
        ('directives = ["log tracking\\rserver evil"]', "directives[0]"),
        ('[[servers]]\nhost = "a.example"\noptions = ["iburst\\nserver evil"]', "servers[0].options[0]"),
        ("directives = ['log tracking\u2028server evil']", "directives[0]"),
        ("wait = -1", "wait"),
        ("this is not toml", "TOML"),
    ],
)
def test_bad_input_is_one_line_naming_the_key(text: str, names: str) -> None:
    with pytest.raises(BadInput) as err:
        settings.parse(text)
    assert names in err.value.message
    assert "\n" not in err.value.message


def test_flags_override_the_file() -> None:
    s = settings.parse("ipv6 = 'off'\nphc = 'on'").override(ipv6="on", phc=None)
    assert (s.ipv6, s.phc) == ("on", "on")


def test_bad_flag_value() -> None:
    with pytest.raises(BadInput, match="--ipv6"):
        settings.Settings().override(ipv6="yes")


@pytest.mark.parametrize("host", ["169.254.169.123", "fd00:ec2::123", "ntp.example.com", "a-b.c9.d",
                                  "time.aws.com.", "localhost"])
def test_good_hosts(host: str) -> None:
    settings.validate_host(host, "h")


@pytest.mark.parametrize("host", ["", "a..b", "a_b.example", "x" * 64 + ".com", "1.2.3.4.5.6/8", "a b"])
def test_bad_hosts(host: str) -> None:
    with pytest.raises(BadInput):
        settings.validate_host(host, "h")
