// SPDX-License-Identifier: GPL-2.0
/*
 * Seawall's XDP blocklist: drop frames whose source address lies in a blocked
 * CIDR, at a cost that does not grow with the number of CIDRs.
 *
 * Verdict (the Python reference is seawall.dataplane.xdp.reference.verdict):
 *   1. not IPv4/IPv6 (after up to two 802.1Q/802.1ad tags)      -> PASS  (OUT_NOT_IP)
 *   2. IP header truncated or invalid (version, IHL < 5, short)  -> PASS  (OUT_MALFORMED;
 *      the kernel's own IP input path discards such frames)
 *   3. TCP/UDP with a destination port in sw_failsafe            -> PASS  (OUT_FAILSAFE)
 *      (only when the L4 header is present: not for non-first fragments, not
 *      when the frame ends inside the ports; a *source* port never exempts)
 *   4. IPv6 neighbour discovery: ICMPv6 type 133..137 with hop
 *      limit 255 and the L4 header present (ARP, which is not IP,
 *      passes at step 1; without this a blocked IPv6 source could
 *      never resolve us, so failsafe ports would not work for it)  -> PASS  (OUT_NEIGHBOUR)
 *   5. source address in a blocked CIDR of the active slot       -> DROP  (OUT_DROP)
 *   6. otherwise                                                  -> PASS  (OUT_PASS)
 *
 * Flat-cost lookup structures, double-buffered (slot a / b, sw_cfg.active):
 *   Short prefixes, sw_top_* (an array of u64 words, bit per block): words
 *     0..3 one bit per IPv4 /8 (prefixes /0../8), words 4..1027 one bit per
 *     IPv4 /16 (prefixes /9../16), words 1028..1031 one bit per IPv6 /8
 *     (prefixes /0../8). A prefix sets at most 256 bits in at most 4 words,
 *     so adding or removing a /0 costs what a /32 costs.
 *   IPv4 "DIR-24-8": sw_v4l1_* is a direct-indexed array holding 2 bits per /24
 *     (0 = nothing, 1 = whole /24 blocked by a prefix of length /17../24,
 *      2 = look at sw_v4l2_*), packed 32 per u64; sw_v4l2_* maps a /24 to a
 *     256-bit bitmap of its blocked addresses (prefixes /25../32).
 *     Cost: one inlined array access, plus one hash lookup for /24s that hold
 *     longer prefixes.
 *   IPv6, a stride-8 trie with fixed levels (prefixes /9 and longer): /16 in sw_v6l16_* (a direct
 *     array of 65,536 entries); /24../56 in sw_v6mid_* (key: the top 64 bits
 *     masked to the level, with the level in the low byte); /64 in
 *     sw_v6l64_*; /128 addresses in sw_v6x_* (exact); the rare /72../120 in
 *     sw_v6long_*. Node flags: BLOCKED, CHILDREN (a node exists one level
 *     down) and, at /64, EXACT (a /128 exists below). A prefix is expanded to
 *     the next level (at most 128 nodes). A lookup stops at the first BLOCKED
 *     node or node without children; the /64 node is looked at first (most
 *     IPv6 blocklist entries are /64s and /128s). The cost depends on the
 *     length of the matching prefix, never on how many entries the set holds.
 *
 * Counters: sw_stats (per CPU, packets and bytes per outcome, exact) and
 * sw_hits (per CPU LRU: dropped packets per source address, user space
 * attributes them to CIDRs). sw_hits is sampled: one drop in 2^hit_shift
 * (sw_cfg.hit_shift, 0 = every drop) adds 2^hit_shift, an unbiased estimate
 * whose relative standard error is sqrt((2^hit_shift - 1) / n) for n drops.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ethernet.h"

/* Outcome numbers, flags, table sizes, the shared structs and every map
 * definition come from seawall.dataplane.xdp.abi (generated headers). */
#include "seawall_maps.h"

static __always_inline int account(struct xdp_md *ctx, __u32 outcome, int action)
{
	struct counter *c = bpf_map_lookup_elem(&sw_stats, &outcome);

	if (c) {
		c->packets += 1;
		c->bytes += ctx->data_end - ctx->data;
	}
	return action;
}

static __always_inline void count_hit(struct config *cfg, struct hit_key *key)
{
	__u32 shift = cfg ? cfg->hit_shift & HIT_SHIFT_MAX : 0;
	__u64 weight = 1ULL << shift, *n;

	if (shift && (bpf_get_prandom_u32() & (weight - 1)))
		return;
	n = bpf_map_lookup_elem(&sw_hits, key);
	if (n)
		*n += weight;
	else
		bpf_map_update_elem(&sw_hits, key, &weight, BPF_NOEXIST);
}

static __always_inline int is_failsafe(__u8 proto, __u16 dport_host)
{
	__u32 index = proto == IPPROTO_TCP ? FAILSAFE_TCP : FAILSAFE_UDP;
	struct port_bitmap *ports = bpf_map_lookup_elem(&sw_failsafe, &index);

	if (!ports)
		return 0;
	return (ports->w[(dport_host >> 6) & (PORT_BITMAP_WORDS - 1)] >> (dport_host & 63)) & 1;
}

/* Bit ``bit`` of word ``word`` of the short-prefix bitmaps. */
static __always_inline int top_bit(void *top, __u32 word, __u32 bit)
{
	__u64 *w = bpf_map_lookup_elem(top, &word);

	return w ? (*w >> (bit & 63)) & 1 : 0;
}

static __always_inline int v4_lookup(void *top, void *l1, void *l2, __u32 addr)
{
	__u32 slot24 = addr >> 8;
	__u32 index = slot24 >> 5;
	__u32 shift = (slot24 & 31) * 2;
	__u64 *word;
	__u32 state;

	if (top_bit(top, TOP_V4_8 + (addr >> 30), addr >> 24))
		return 1;
	if (top_bit(top, TOP_V4_16 + (addr >> 22), addr >> 16))
		return 1;
	word = bpf_map_lookup_elem(l1, &index);
	if (!word)
		return 0;
	state = (*word >> shift) & 3;
	if (state == V4_STATE_BLOCKED)
		return 1;
	if (state == V4_STATE_L2) {
		struct bitmap256 *bits = bpf_map_lookup_elem(l2, &slot24);
		__u32 low = addr & 0xff;

		if (!bits)
			return 0;
		return (bits->w[(low >> 6) & 3] >> (low & 63)) & 1;
	}
	return 0;
}

/* One stride level: 1 = blocked, 0 = not blocked, -1 = go one level down. */
static __always_inline int v6_step(__u32 *flags)
{
	if (!flags)
		return 0;
	if (*flags & V6_BLOCKED)
		return 1;
	return (*flags & V6_CHILDREN) ? -1 : 0;
}

static __always_inline int v6_lookup(void *top, void *l16, void *mid, void *l64, void *exact, void *lng,
				     const __u8 *saddr)
{
	__u64 high = 0, key;
	__u32 index, *flags;
	struct v6key long_key = {};
	int step;

	if (top_bit(top, TOP_V6_8 + (saddr[0] >> 6), saddr[0]))
		return 1;
#pragma unroll
	for (int i = 0; i < 8; i++)
		high = (high << 8) | saddr[i];

	index = high >> 48;
	step = v6_step(bpf_map_lookup_elem(l16, &index));
	if (step >= 0)
		return step;
	/* Blocklists are mostly /64s and /128s: look at the /64 node first, so
	 * those hits cost two lookups instead of a walk through /24../56. */
	key = high;
	flags = bpf_map_lookup_elem(l64, &key);
	if (flags) {
		if (*flags & V6_BLOCKED)
			return 1;
		if ((*flags & V6_EXACT) && bpf_map_lookup_elem(exact, saddr))
			return 1;
	}
#pragma unroll
	for (int level = 24; level <= 56; level += 8) {
		key = (high & ~((1ULL << (64 - level)) - 1)) | level;
		step = v6_step(bpf_map_lookup_elem(mid, &key));
		if (step >= 0)
			return step;
	}
	/* The /64 node was checked above; only its CHILDREN (/72../120) remain. */
	if (!flags || !(*flags & V6_CHILDREN))
		return 0;
	__builtin_memcpy(long_key.addr, saddr, 8);
#pragma unroll
	for (int level = 9; level <= 15; level++) {
		long_key.len = level;
		long_key.addr[level - 1] = saddr[level - 1];
		step = v6_step(bpf_map_lookup_elem(lng, &long_key));
		if (step >= 0)
			return step;
	}
	return 0;
}

static __always_inline struct config *config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sw_cfg, &zero);
}

static __always_inline int handle_ipv4(struct xdp_md *ctx, void *l3, void *end)
{
	struct iphdr *ip = l3;
	struct hit_key hit = {};
	struct config *cfg;
	__u32 ihl_bytes, saddr;
	int blocked;

	if ((void *)(ip + 1) > end)
		return account(ctx, OUT_MALFORMED, XDP_PASS);
	ihl_bytes = ip->ihl * 4;
	if (ip->version != 4 || ihl_bytes < sizeof(*ip) || l3 + ihl_bytes > end)
		return account(ctx, OUT_MALFORMED, XDP_PASS);

	if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) &&
	    !(ip->frag_off & bpf_htons(0x1fff))) {
		__be16 *ports = l3 + ihl_bytes;

		if ((void *)(ports + 2) <= end && is_failsafe(ip->protocol, bpf_ntohs(ports[1])))
			return account(ctx, OUT_FAILSAFE, XDP_PASS);
	}

	saddr = bpf_ntohl(ip->saddr);
	cfg = config();
	if (cfg && cfg->active)
		blocked = v4_lookup(&sw_top_b, &sw_v4l1_b, &sw_v4l2_b, saddr);
	else
		blocked = v4_lookup(&sw_top_a, &sw_v4l1_a, &sw_v4l2_a, saddr);
	if (!blocked)
		return account(ctx, OUT_PASS, XDP_PASS);
	hit.addr[10] = 0xff;
	hit.addr[11] = 0xff;
	__builtin_memcpy(&hit.addr[12], &ip->saddr, 4);
	count_hit(cfg, &hit);
	return account(ctx, OUT_DROP, XDP_DROP);
}

static __always_inline int handle_ipv6(struct xdp_md *ctx, void *l3, void *end)
{
	struct ipv6hdr *ip6 = l3;
	struct hit_key hit = {};
	struct config *cfg;
	void *cursor;
	__u8 next, saddr[16];
	int l4_present = 1, blocked;

	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return account(ctx, OUT_MALFORMED, XDP_PASS);
	next = ip6->nexthdr;
	cursor = ip6 + 1;

#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
			__u8 *ext = cursor;

			if ((void *)(ext + 2) > end) {
				l4_present = 0;
				break;
			}
			next = ext[0];
			cursor += (ext[1] + 1) * 8;
		} else if (next == IPPROTO_FRAGMENT) {
			__u8 *frag = cursor;

			if ((void *)(frag + 8) > end) {
				l4_present = 0;
				break;
			}
			next = frag[0];
			/* fragment offset != 0: no L4 header in this fragment */
			if ((frag[2] << 5 | frag[3] >> 3) != 0)
				l4_present = 0;
			cursor += 8;
		} else if (next == IPPROTO_AH) {
			__u8 *ah = cursor;

			if ((void *)(ah + 2) > end) {
				l4_present = 0;
				break;
			}
			next = ah[0];
			cursor += (ah[1] + 2) * 4;
		} else {
			break;
		}
	}

	if (l4_present && (next == IPPROTO_TCP || next == IPPROTO_UDP)) {
		__be16 *ports = cursor;

		if ((void *)(ports + 2) <= end && is_failsafe(next, bpf_ntohs(ports[1])))
			return account(ctx, OUT_FAILSAFE, XDP_PASS);
	}
	if (l4_present && next == IPPROTO_ICMPV6 && ip6->hop_limit == ND_HOP_LIMIT) {
		__u8 *icmp6 = cursor;

		if ((void *)(icmp6 + 1) <= end && icmp6[0] >= ND_TYPE_FIRST && icmp6[0] <= ND_TYPE_LAST)
			return account(ctx, OUT_NEIGHBOUR, XDP_PASS);
	}

	__builtin_memcpy(saddr, &ip6->saddr, 16);
	cfg = config();
	if (cfg && cfg->active)
		blocked = v6_lookup(&sw_top_b, &sw_v6l16_b, &sw_v6mid_b, &sw_v6l64_b, &sw_v6x_b, &sw_v6long_b, saddr);
	else
		blocked = v6_lookup(&sw_top_a, &sw_v6l16_a, &sw_v6mid_a, &sw_v6l64_a, &sw_v6x_a, &sw_v6long_a, saddr);
	if (!blocked)
		return account(ctx, OUT_PASS, XDP_PASS);
	__builtin_memcpy(hit.addr, saddr, 16);
	count_hit(cfg, &hit);
	return account(ctx, OUT_DROP, XDP_DROP);
}

SEC("xdp")
int SEAWALL_PROGRAM(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	void *l3 = data;
	__be16 proto = 0;

	if (parse_ethernet(data, end, &proto, &l3) < 0)
		return account(ctx, OUT_MALFORMED, XDP_PASS);
	if (proto == bpf_htons(ETH_P_IP))
		return handle_ipv4(ctx, l3, end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return handle_ipv6(ctx, l3, end);
	return account(ctx, OUT_NOT_IP, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
