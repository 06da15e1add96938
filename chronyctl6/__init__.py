"""chronyctl6: keep an EC2 instance's clock on the Amazon Time Sync Service over IPv6."""

__version__ = "0.1.0"
