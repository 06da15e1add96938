"""A simulated EC2 instance for chronyctl6's end-to-end tests, benchmarks and demo.

Root only, and only inside an isolated network namespace (`unshare -n`): see ec2.py.
"""

from sandbox.ec2 import (
    IMDS_V4,
    IMDS_V6,
    INSTANCE_V4,
    INSTANCE_V6,
    TIME_SYNC_V4,
    TIME_SYNC_V6,
    Ec2,
)
from sandbox.instance import Instance
from sandbox.namespaces import SandboxError

__all__ = [
    "IMDS_V4",
    "IMDS_V6",
    "INSTANCE_V4",
    "INSTANCE_V6",
    "TIME_SYNC_V4",
    "TIME_SYNC_V6",
    "Ec2",
    "Instance",
    "SandboxError",
]
