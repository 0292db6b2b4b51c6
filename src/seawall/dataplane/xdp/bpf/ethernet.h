/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ethernet parsing shared by the blocklist program and the benchmark's LPM
 * comparison program, so that the two differ only in their lookup.
 */
#ifndef SEAWALL_ETHERNET_H
#define SEAWALL_ETHERNET_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include "seawall_abi.h" /* MAX_VLAN_TAGS */

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

struct vlanhdr {
	__be16 tci;
	__be16 proto;
};

/*
 * Skip the Ethernet header and up to two 802.1Q/802.1ad tags. Sets *proto to
 * the ethertype after them (a third tag stays a tag: "not IP") and *l3 to the
 * next header. Returns 0, or -1 when the frame ends inside these headers.
 */
static __always_inline int parse_ethernet(void *data, void *end, __be16 *proto_out, void **l3)
{
	struct ethhdr *eth = data;
	void *cursor;
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return -1;
	proto = eth->h_proto;
	cursor = eth + 1;
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
			struct vlanhdr *vlan = cursor;

			if ((void *)(vlan + 1) > end)
				return -1;
			proto = vlan->proto;
			cursor = vlan + 1;
		}
	}
	*l3 = cursor;
	*proto_out = proto;
	return 0;
}

#endif
