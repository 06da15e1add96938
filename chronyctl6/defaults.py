"""The defaults and limits that are not an option's own default, in one place.

An option whose default is its click default (`check --samples 6`) is documented by that default:
`--help` prints it and packaging/gen_docs.py reads it from the command tree. The values here are
the ones a flag's default cannot carry (apply's `--wait` defaults to settings.toml's `wait`, else
APPLY_WAIT on a live host) or that several commands and the settings schema share. The CLI, the
cores, settings(5), the man page and the README read them from here; tests/test_doc_defaults.py
holds every default the docs state to the code. Standard library only, imports nothing.
"""

from __future__ import annotations

APPLY_WAIT = 60.0  # apply and restore on a live host: seconds for chronyd to select Time Sync
RELEASE_WAIT = 10.0  # release (dpkg waits on it): seconds for chronyd to answer
WAIT_MAX = 3600  # the most any --wait, or settings.toml's wait, may be
LOCK_TIMEOUT = 10.0  # seconds to wait for another apply's lock
SETTLE = 10.0  # boot: seconds to wait for an IPv6 address EC2 assigned to come up
SETTLE_MAX = 120
