"""Packet dataplanes that enforce Seawall's blocklists in the kernel (XDP first, iptables raw as fallback)."""
