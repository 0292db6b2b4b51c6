// SPDX-License-Identifier: GPL-2.0
/*
 * Flood generator for bench/flood: run with BPF_PROG_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES on the sending veth (ingress_ifindex = that
 * veth). Every run of the program is one 60-byte UDP frame; XDP_TX sends it
 * out of the sending veth, i.e. into the receiving veth's NAPI ring, as a
 * driver would hand a received frame to XDP.
 *
 *   gen_tx           the frame as given (traffic "single": one source)
 *   gen_spread_tx    source address rewritten round robin over the
 *                    gen_sources array (traffic "spread": 4,096 sources)
 *   gen_drop,
 *   gen_spread_drop  the same work, then XDP_DROP: the generator's own cost
 *                    (measured in the same run and subtracted)
 *
 * gen_sources holds (source address, IPv4 header checksum for that source),
 * both in network byte order, computed in user space: the program writes
 * them instead of recomputing a checksum, so a frame is valid whatever a
 * previous run left in the (recycled) page.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define SOURCES 4096

struct source {
	__be32 saddr;
	__u16 check;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SOURCES);
	__type(key, __u32);
	__type(value, struct source);
} gen_sources SEC(".maps");

/* Frames generated, per CPU (index 0); also the round-robin position. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_count SEC(".maps");

static __always_inline __u64 count(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&gen_count, &zero);

	if (!n)
		return 0;
	return (*n)++;
}

static __always_inline int spread(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 index = count() & (SOURCES - 1);
	struct source *src;

	if ((void *)(ip + 1) > end)
		return -1;
	src = bpf_map_lookup_elem(&gen_sources, &index);
	if (!src)
		return -1;
	ip->saddr = src->saddr;
	ip->check = src->check;
	return 0;
}

SEC("xdp")
int gen_tx(struct xdp_md *ctx)
{
	count();
	return XDP_TX;
}

SEC("xdp")
int gen_drop(struct xdp_md *ctx)
{
	count();
	return XDP_DROP;
}

SEC("xdp")
int gen_spread_tx(struct xdp_md *ctx)
{
	return spread(ctx) ? XDP_ABORTED : XDP_TX;
}

SEC("xdp")
int gen_spread_drop(struct xdp_md *ctx)
{
	return spread(ctx) ? XDP_ABORTED : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
