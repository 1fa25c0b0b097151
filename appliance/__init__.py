"""hb-appliance: a wire-compatible replacement for the Linux-HA Heartbeat v1 daemon."""

__version__ = "0.1.0"
# What `heartbeat -V` and the API report; peers and tools compare against 3.0.6.
HEARTBEAT_COMPAT_VERSION = "3.0.6"
