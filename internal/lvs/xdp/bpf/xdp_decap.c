// SPDX-License-Identifier: GPL-2.0
//
// Decapsulation for an LVS-TUN real server whose kernel has no ipip or
// fou module: an XDP program that strips the outer IPv4 or IPv6 header of
// an IP-in-IP packet (protocol 4: IPv4 inside; 41: IPv6 inside), or the
// outer IP, UDP and GUE headers of a packet to one of the configured GUE
// ports, and passes the inner packet on to the stack as if it had arrived
// as it is. Everything else passes untouched (IPv6 extension headers are
// not followed). Go (internal/lvs/xdp, decap.go)
// attaches it and fills gue_ports.
//
// Built by bpf2go with the same flags as xdp_lb.c (../gen.go).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The UDP ports (network order) on which GUE is received.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __be16);
	__type(value, __u8);
} gue_ports SEC(".maps");

// strip removes the hlen bytes after the Ethernet header, keeping the
// Ethernet addresses and giving the frame the inner packet's type.
static __always_inline int strip(struct xdp_md *ctx, __u32 hlen, __be16 proto)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr eth;
	if (data + sizeof(eth) > end)
		return XDP_PASS;
	__builtin_memcpy(&eth, data, sizeof(eth));
	if (bpf_xdp_adjust_head(ctx, (int)hlen))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *out = data;
	if ((void *)(out + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(out, &eth, sizeof(eth));
	out->h_proto = proto;
	return XDP_PASS;
}

// ethertype is the frame type of an inner packet of IP protocol proto
// (IPIP, IPv6), 0 for anything else.
static __always_inline __be16 ethertype(__u8 proto)
{
	if (proto == IPPROTO_IPIP)
		return bpf_htons(ETH_P_IP);
	if (proto == IPPROTO_IPV6)
		return bpf_htons(ETH_P_IPV6);
	return 0;
}

// gue strips the outer headers of a packet whose UDP header (after ihl
// bytes of outer IP header) is at udp, if it is GUE to one of our ports.
static __always_inline int gue(struct xdp_md *ctx, struct udphdr *udp, __u32 ihl)
{
	void *end = (void *)(long)ctx->data_end;
	if ((void *)(udp + 1) > end || !bpf_map_lookup_elem(&gue_ports, &udp->dest))
		return XDP_PASS;
	__u8 *g = (void *)(udp + 1);
	if ((void *)(g + 4) > end)
		return XDP_PASS;
	// GUE (draft-ietf-intarea-gue, as the kernel's fou reads it): the
	// first two bits are the version. Version 0: a control bit (control
	// messages are not ours), the length of the optional fields in
	// 32-bit words, the inner protocol, flags. Version 1: no GUE header,
	// the inner IPv4 or IPv6 header right after UDP (its first nibble
	// 4 or 6 gives 01 as the first two bits).
	__be16 type;
	switch (g[0] >> 6) {
	case 0:
		if (g[0] & 0x20)
			return XDP_PASS;
		type = ethertype(g[1]);
		if (!type)
			return XDP_PASS;
		return strip(ctx, ihl + sizeof(*udp) + 4 + (g[0] & 0x1f) * 4, type);
	case 1:
		type = (g[0] >> 4) == 4 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
		return strip(ctx, ihl + sizeof(*udp), type);
	}
	return XDP_PASS;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__be16 type;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return XDP_PASS;
		type = ethertype(ip6->nexthdr);
		if (type)
			return strip(ctx, sizeof(*ip6), type);
		if (ip6->nexthdr != IPPROTO_UDP)
			return XDP_PASS;
		return gue(ctx, (void *)(ip6 + 1), sizeof(*ip6));
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->version != 4)
		return XDP_PASS;
	// A fragment of a tunnel packet is the stack's to reassemble (and
	// then to drop, without the modules).
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS;
	__u32 ihl = ip->ihl * 4;
	type = ethertype(ip->protocol);
	if (type)
		return strip(ctx, ihl, type);
	if (ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	return gue(ctx, (void *)ip + ihl, ihl);
}

char _license[] SEC("license") = "GPL";
