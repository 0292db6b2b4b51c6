"""The iptables raw tier: untracked host-endpoint policy before conntrack, with ipsets."""
