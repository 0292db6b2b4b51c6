"""Seawall: Calico's "Defend against a DoS attack" as host-level software.

Operators declare Calico v3 resources; an agent enforces untracked ingress Deny
policy at the earliest point the kernel offers (XDP, else the iptables raw table).
"""

__version__ = "0.1.0"
