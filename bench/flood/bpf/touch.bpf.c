// SPDX-License-Identifier: GPL-2.0
/*
 * Diagnostic contestant "floor-touch" (bench/flood, --only): the floor plus
 * reading the frame, i.e. the same Ethernet/VLAN parsing as Seawall's program
 * and a read of the IPv4 source address, then XDP_DROP. The difference to the
 * floor is what merely looking at the packet costs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ethernet.h"

SEC("xdp")
int touch_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	void *cursor = data;
	__be16 proto = 0;
	struct iphdr *ip;

	if (parse_ethernet(data, end, &proto, &cursor) < 0 || proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = cursor;
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	return ip->saddr ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
