// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark comparison: the kernel's standard structure for a CIDR blocklist,
 * one BPF_MAP_TYPE_LPM_TRIE per family looked up with the source address
 * (what Calico's and Cilium's XDP programs do), with the same Ethernet/VLAN/IP
 * parsing as Seawall's program so that only the lookup differs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ethernet.h"

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2 * 1024 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, __u32);
} lpm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2 * 1024 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, __u32);
} lpm_v6 SEC(".maps");

SEC("xdp")
int lpm_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	void *cursor = data;
	__be16 proto = 0;

	if (parse_ethernet(data, end, &proto, &cursor) < 0)
		return XDP_PASS;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor;
		struct lpm_v4 key = { .prefixlen = 32 };

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		__builtin_memcpy(key.addr, &ip->saddr, 4);
		return bpf_map_lookup_elem(&lpm_v4, &key) ? XDP_DROP : XDP_PASS;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor;
		struct lpm_v6 key = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		return bpf_map_lookup_elem(&lpm_v6, &key) ? XDP_DROP : XDP_PASS;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
