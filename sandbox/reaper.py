"""PID 1 of a sandbox namespace: reaps orphans until it is killed.

chronyd daemonises, so its parent exits and the kernel re-parents it to the namespace's PID 1.
`sleep` would leave such children as zombies forever; this loop collects them. When the
sandbox kills this process, the kernel kills everything else in its PID namespace with it.
"""

from __future__ import annotations

import os
import signal


def main() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT})
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        got = signal.sigtimedwait({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}, 1.0)
        if got is not None and got.si_signo != signal.SIGCHLD:
            return


if __name__ == "__main__":
    main()
