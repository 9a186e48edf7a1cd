// SPDX-License-Identifier: GPL-2.0
//
// Tandem's XDP data plane: LVS-DR and LVS-TUN (IPIP, GUE) forwarding of the
// packets a client sends to a virtual service, scheduled by the same weighted Maglev tables and
// the same flow hash as the nftables DR data plane (internal/lvs/nft), so
// that the two agree on every flow. Go (internal/lvs/xdp) fills the maps;
// this program only reads them, except for the flow table and counters.
//
// Built by bpf2go (see ../gen.go) against the UAPI headers of
// linux-libc-dev and libbpf-dev's bpf_helpers.h: no vmlinux.h, no CO-RE,
// since nothing here reads a kernel structure.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10

// Limits; the Go side reads them back from the maps' max_entries.
#define MAX_SERVICES 256
#define MAX_SLOTS 4093 // the largest Maglev table (lvs.HashedSlots)
#define MAX_REALS 16384
#define MAX_FLOWS (1 << 20)

// svc_val.key: what a new flow's hash covers, as the nftables DR path
// hashes it (nft/build.go, schedule).
#define KEY_SADDR_SPORT 0 // client address and port: rr, wrr, ... and sh-port/mh-port
#define KEY_SADDR 1       // client address (masked with persistence): sh, mh, persistence
#define KEY_DADDR 2       // the VIP: dh, lblc, lblcr

// The flow hash's seed: nft's hashSeed, so that both data planes pick the
// same slot for a flow.
#define HASH_SEED 0x74616e64

struct svc_key {
	__u8 addr[16]; // the VIP; IPv4 in the first 4 bytes, the rest zero
	__be16 port;   // 0: the service of every port
	__u8 proto;
	__u8 family;
};

struct svc_val {
	__u32 id;      // the service's number: flow table keys, sanity of real_val.svc
	__u32 row;     // the slot table row in use (slots: row * MAX_SLOTS + slot)
	__u32 size;    // slots in the row; 0: no real server has a positive weight, drop
	__u32 key;     // KEY_*
	__u64 timeout; // ns a flow's entry outlives its last packet
	__u8 mask[16]; // persistence granularity; all zero: no persistence
};

// real_val.tun: how packets reach the real server.
#define TUN_NONE 0 // DR: the frame itself, to the server's MAC
#define TUN_IPIP 1 // in an outer IP header (protocol 4, or 41 for IPv6 inside)
#define TUN_GUE 2  // in outer IP, UDP to real_val.port, and a GUE header

struct real_val {
	__u8 dmac[6];  // the real server's MAC (DR)
	__u8 smac[6];  // the egress interface's (DR)
	__u32 ifindex; // the egress interface (DR)
	__u32 svc;     // the service's id
	__u32 gen;     // changes whenever the id is given to another real server
	__u32 live;    // 1 while it holds slots; a flow on a server without is rescheduled
	__u8 tun;      // TUN_*
	__u8 csum;     // GUE: fill in the UDP checksum (csum, remcsum); else 0
	__be16 port;   // GUE: the real server's GUE port
	__u8 family;   // TUN: the outer header's, AF_INET or AF_INET6
	__u8 pad[3];
	__u8 saddr[16]; // TUN: the outer source, the director's address toward the server
	__u8 daddr[16]; // TUN: the real server's address (IPv4: the first 4 bytes)
};

struct flow_key {
	__u32 svc;
	__u8 addr[16]; // client address (masked with persistence)
	__be16 port;   // client port (0 with persistence)
	__u16 pad;
};

struct flow_val {
	__u32 real;
	__u32 gen;
	__u64 seen; // bpf_ktime_get_ns of its last packet
};

// stats: per-CPU counts of the packets the program drops where IPVS
// would have answered or forwarded them otherwise (indices STAT_*).
#define STAT_TOO_BIG 0  // encapsulated, bigger than the egress MTU
#define STAT_NO_ROUTE 1 // no route, neighbour or forwarding toward a TUN server
#define STAT_MAX 2

struct iface_val {
	__u8 mac[6];
	__u16 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, struct svc_val);
} services SEC(".maps");

// Two rows per service: Go writes the one not in use and then switches
// svc_val.row, so that a packet sees the old table or the new one.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 2 * MAX_SERVICES * MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32); // real id
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MAX_REALS);
	__type(key, __u32);
	__type(value, struct real_val);
} reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MAX_REALS);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

// The interfaces the program is attached to, with their MACs: only frames
// sent to that MAC, and not from it, are for this director.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct iface_val);
} ifaces SEC(".maps");

// Egress interfaces other than the ingress one, for XDP_REDIRECT.
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

// The definitions of the services and real servers, as Tandem was told
// them: the program does not read these; they are how a restarted Tandem
// finds what it programmed (they are pinned, as every map here).
struct svc_def {
	__u8 vip[16];
	__u16 port; // host order
	__u8 proto;
	__u8 family;
	char sched[8];
	__u32 flags;
	__u32 persist; // persistence timeout, s
	__u8 mask[16]; // persistence granularity
};

struct real_def {
	__u8 addr[16];
	__u16 port; // host order
	__u8 family;
	__u8 method;
	__u32 svc; // the service's id
	__u32 weight;
	__u32 lower, upper; // connection thresholds
	__u8 tun_type;      // lvs.TunnelType (TUN)
	__u8 tun_csum;      // lvs.TunnelCsum
	__u16 tun_port;     // GUE port, host order
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct svc_def);
} svc_defs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MAX_REALS);
	__type(key, __u32);
	__type(value, struct real_def);
} real_defs SEC(".maps");

// The Linux kernel's jhash (include/linux/jhash.h), which nft's hash
// expression computes: the same mixing, byte order and tail handling.
#define rol32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
#define JHASH_INITVAL 0xdeadbeef
#define jhash_mix(a, b, c)                        \
	{                                         \
		a -= c; a ^= rol32(c, 4); c += b; \
		b -= a; b ^= rol32(a, 6); a += c; \
		c -= b; c ^= rol32(b, 8); b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4); b += a; \
	}
#define jhash_final(a, b, c)            \
	{                               \
		c ^= b; c -= rol32(b, 14); \
		a ^= c; a -= rol32(c, 11); \
		b ^= a; b -= rol32(a, 25); \
		c ^= b; c -= rol32(b, 16); \
		a ^= c; a -= rol32(c, 4);  \
		b ^= a; b -= rol32(a, 14); \
		c ^= b; c -= rol32(b, 24); \
	}

static __always_inline __u32 le32(const __u8 *k)
{
	return (__u32)k[0] | (__u32)k[1] << 8 | (__u32)k[2] << 16 | (__u32)k[3] << 24;
}

// jhash of len bytes (4, 8, 16 or 20: the keys below), a multiple of 4,
// so the tail is whole words.
static __always_inline __u32 jhash(const __u8 *k, __u32 len, __u32 seed)
{
	__u32 a, b, c;
	a = b = c = JHASH_INITVAL + len + seed;
	while (len > 12) {
		a += le32(k);
		b += le32(k + 4);
		c += le32(k + 8);
		jhash_mix(a, b, c);
		len -= 12;
		k += 12;
	}
	switch (len) {
	case 12:
		c += le32(k + 8);
		// fallthrough
	case 8:
		b += le32(k + 4);
		// fallthrough
	case 4:
		a += le32(k);
		jhash_final(a, b, c);
		break;
	}
	return c;
}

// The slot of hash h in a table of n: nft_hash's reciprocal_scale.
static __always_inline __u32 scale(__u32 h, __u32 n)
{
	return (__u32)(((__u64)h * n) >> 32);
}

struct pkt {
	__u8 saddr[16]; // first: 16-bit aligned, for checksums (sum16)
	__u8 daddr[16];
	__be16 sport, dport;
	__u32 len; // of the IP packet
	__u8 family;
	__u8 proto;
	__u8 alen; // 4 or 16
};

// parse reads the packet's addresses and ports; 0 means not ours (not
// IPv4/IPv6 TCP/UDP, a fragment other than the first, truncated).
static __always_inline int parse(void *data, void *end, struct pkt *p)
{
	struct ethhdr *eth = data;
	void *l4;
	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return 0;
		if (ip->frag_off & bpf_htons(0x1fff)) // IP_OFFSET: no ports here
			return 0;
		p->family = AF_INET;
		p->proto = ip->protocol;
		p->alen = 4;
		__builtin_memcpy(p->saddr, &ip->saddr, 4);
		__builtin_memcpy(p->daddr, &ip->daddr, 4);
		p->len = bpf_ntohs(ip->tot_len);
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return 0;
		// Extension headers are not followed: such packets go to the stack.
		p->family = AF_INET6;
		p->proto = ip6->nexthdr;
		p->alen = 16;
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
		p->len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		l4 = ip6 + 1;
	} else {
		return 0;
	}
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return 0;
	__be16 *ports = l4;
	if ((void *)(ports + 2) > end)
		return 0;
	p->sport = ports[0];
	p->dport = ports[1];
	return 1;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return ((__u32)a[0] ^ b[0]) + ((__u32)a[1] ^ b[1]) + ((__u32)a[2] ^ b[2]) + ((__u32)a[3] ^ b[3]) +
		       ((__u32)a[4] ^ b[4]) + ((__u32)a[5] ^ b[5]) ==
	       0;
}

// The addresses this host holds, kept by the Go side from the kernel's
// address notifications: only packets for a VIP the director holds are
// forwarded, as IPVS sees only local traffic, so that a VRRP backup
// forwards nothing. Not pinned: a Tandem that starts fills a fresh one.
struct local_key {
	__u8 addr[16];
	__u32 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct local_key);
	__type(value, __u8);
} locals SEC(".maps");

// schedule picks a new flow's real server: the flow's slot in the
// service's current Maglev row.
static __always_inline __u32 *schedule(struct svc_val *svc, struct pkt *p, const __u8 *client)
{
	__u8 buf[20] = {};
	__u32 len, h;
	switch (svc->key) {
	case KEY_SADDR:
		__builtin_memcpy(buf, client, 16);
		len = p->alen;
		break;
	case KEY_DADDR:
		__builtin_memcpy(buf, p->daddr, 16);
		len = p->alen;
		break;
	default:
		// address . port, the port zero-padded to 4 bytes, as nft lays
		// a concatenation out in its registers.
		__builtin_memcpy(buf, p->saddr, 16);
		if (p->alen == 4) {
			__builtin_memcpy(buf + 4, &p->sport, 2);
			__builtin_memset(buf + 6, 0, 14);
			len = 8;
		} else {
			__builtin_memcpy(buf + 16, &p->sport, 2);
			len = 20;
		}
	}
	if (len == 4)
		h = jhash(buf, 4, HASH_SEED);
	else if (len == 8)
		h = jhash(buf, 8, HASH_SEED);
	else if (len == 16)
		h = jhash(buf, 16, HASH_SEED);
	else
		h = jhash(buf, 20, HASH_SEED);
	__u32 slot = scale(h, svc->size);
	if (slot >= MAX_SLOTS)
		return 0;
	__u32 idx = svc->row * MAX_SLOTS + slot;
	return bpf_map_lookup_elem(&slots, &idx);
}

// scratch holds encap's route lookup (a struct bpf_fib_lookup), which
// the stack has no room for.
struct scratch_val {
	__u64 room[(sizeof(struct bpf_fib_lookup) + 7) / 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_val);
} scratch SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &stat);
	if (n)
		(*n)++;
}

// fold turns a 32-bit one's complement sum into 16 bits.
static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

// sum16 is the one's complement sum (unfolded) of the n bytes at p, n
// even and constant: read in host order, which gives the checksum in the
// packet's order once stored back as it was read (RFC 1071, 2.(B)).
static __always_inline __u32 sum16(const void *p, int n)
{
	const __u16 *w = p;
	__u32 s = 0;
#pragma unroll
	for (int i = 0; i < n / 2; i++)
		s += w[i];
	return s;
}

// The IPv4 pseudo header of the TCP/UDP checksums (RFC 768).
struct pseudo4 {
	__be32 saddr, daddr;
	__u8 zero, proto;
	__be16 len;
};

// tunnel is what encap needs of the inner packet, read before its outer
// headers are pushed.
struct tunnel {
	__u8 tos, ttl, proto; // outer TOS and TTL, and what the outer header carries
	__be16 df;            // the outer DF bit
	__u32 sum;            // the inner packet's one's complement sum; 0: none known
};

// inner reads what encapsulating p needs. The outer header copies the
// inner's TOS (traffic class), TTL (hop limit) and DF, as IPVS's tunnel
// transmitter does (ip_vs_xmit.c, ip_vs_prepare_tunneled_skb): a packet
// at the end of its life does not get 64 more hops, and path MTU
// discovery works end to end. An inner IPv6 packet may not be fragmented
// on the way, so DF is set for it.
//
// The sum serves a GUE UDP checksum (csum) without reading the payload:
// an IPv4 header with a correct checksum sums to 0xffff, and a TCP or UDP
// segment with a correct checksum sums to the complement of its pseudo
// header's sum (the trick of the kernel's local checksum offload). An
// inner UDP datagram without checksum, or a fragment, leaves it unknown.
static __always_inline int inner(void *data, void *end, struct pkt *p, struct tunnel *t)
{
	struct ethhdr *eth = data;
	__u32 s = 0;
	if (p->family == AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return 0;
		t->tos = ip->tos;
		t->ttl = ip->ttl;
		t->df = ip->frag_off & bpf_htons(0x4000);
		t->proto = IPPROTO_IPIP;
		struct pseudo4 ph = {.saddr = ip->saddr, .daddr = ip->daddr, .proto = p->proto,
				     .len = bpf_htons(p->len - ip->ihl * 4)};
		s = (__u16)~fold(sum16(&ph, sizeof(ph)));
		if (ip->frag_off & bpf_htons(0x2000)) // more fragments: the L4 sum covers more
			s = 0;
		if (p->proto == IPPROTO_UDP) {
			struct udphdr *udp = (void *)ip + ip->ihl * 4;
			if ((void *)(udp + 1) > end || udp->check == 0)
				s = 0;
		}
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return 0;
		t->tos = ip6->priority << 4 | ip6->flow_lbl[0] >> 4;
		t->ttl = ip6->hop_limit;
		t->df = bpf_htons(0x4000);
		t->proto = IPPROTO_IPV6;
		// The IPv6 pseudo header: addresses, 32-bit length (under 2^16
		// here), next header; each 16-bit word as read from memory.
		s = sum16(p->saddr, 32) + bpf_htons(p->len - sizeof(*ip6)) + bpf_htons(p->proto);
		s = (__u16)~fold(s);
		s += sum16(ip6, sizeof(*ip6));
	}
	t->sum = s;
	return 1;
}

// The part of a packet an ICMP error quotes: its IPv4 header (without
// options) and the first 8 bytes of its payload (RFC 792), which hold the
// ports the sender needs to find its connection.
#define ICMP_QUOTE 28

// frag_needed turns the IPv4 packet of ctx, which has DF set and does not
// fit the tunnel's MTU, into the ICMP "fragmentation needed" error (type 3,
// code 4, RFC 1191) that tells its sender the path MTU, from the VIP it
// was sent to, and returns it to the sender (XDP_TX), as IPVS answers such
// packets. Packets with IPv4 options are dropped instead.
static __attribute__((noinline)) int frag_needed(struct xdp_md *ctx, __u16 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)ip + ICMP_QUOTE > end || ip->ihl != 5)
		return XDP_DROP;
	__u8 quote[ICMP_QUOTE] __attribute__((aligned(8)));
	__u8 dmac[6] __attribute__((aligned(8)));
	__u8 smac[6] __attribute__((aligned(8)));
	__builtin_memcpy(quote, ip, ICMP_QUOTE);
	__builtin_memcpy(dmac, eth->h_source, 6);
	__builtin_memcpy(smac, eth->h_dest, 6);
	__be32 saddr = ip->daddr, daddr = ip->saddr;
	int len = end - data;
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(*eth) + ICMP_QUOTE) - len))
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, -(int)(sizeof(struct iphdr) + 8)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip = (void *)(eth + 1);
	__u8 *icmp = (void *)(ip + 1);
	if ((void *)(icmp + 8 + ICMP_QUOTE) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, dmac, 6);
	__builtin_memcpy(eth->h_source, smac, 6);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0xc0; // internetwork control, as the kernel's ICMP errors
	ip->tot_len = bpf_htons(sizeof(*ip) + 8 + ICMP_QUOTE);
	ip->id = (__be16)bpf_get_prandom_u32();
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = ~fold(sum16(ip, sizeof(*ip)));
	icmp[0] = 3; // destination unreachable
	icmp[1] = 4; // fragmentation needed and DF set
	icmp[2] = 0;
	icmp[3] = 0;
	icmp[4] = 0;
	icmp[5] = 0;
	icmp[6] = mtu >> 8; // next-hop MTU
	icmp[7] = mtu & 0xff;
	__builtin_memcpy(icmp + 8, quote, ICMP_QUOTE);
	*(__u16 *)(icmp + 2) = ~fold(sum16(icmp, 8 + ICMP_QUOTE));
	return XDP_TX;
}

// The part of an IPv6 packet Tandem's "packet too big" quotes: its header
// and the first 8 bytes of its payload (RFC 4443 asks for as much as fits
// in 1280 bytes; this much lets the sender find its connection).
#define ICMP6_QUOTE 48

// too_big6 is frag_needed for IPv6: the ICMPv6 "packet too big" error
// (type 2, RFC 4443 3.2) naming mtu, from the VIP, back to the sender.
static __attribute__((noinline)) int too_big6(struct xdp_md *ctx, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) + ICMP6_QUOTE > end)
		return XDP_DROP;
	__u8 quote[ICMP6_QUOTE] __attribute__((aligned(8)));
	__u8 dmac[6] __attribute__((aligned(8)));
	__u8 smac[6] __attribute__((aligned(8)));
	__builtin_memcpy(quote, eth + 1, ICMP6_QUOTE);
	__builtin_memcpy(dmac, eth->h_source, 6);
	__builtin_memcpy(smac, eth->h_dest, 6);
	int len = end - data;
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(*eth) + ICMP6_QUOTE) - len))
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, -(int)(sizeof(struct ipv6hdr) + 8)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	__u8 *icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 8 + ICMP6_QUOTE) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, dmac, 6);
	__builtin_memcpy(eth->h_source, smac, 6);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	__builtin_memset(ip6, 0, sizeof(*ip6));
	ip6->version = 6;
	ip6->payload_len = bpf_htons(8 + ICMP6_QUOTE);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, quote + 24, 16); // the packet's destination, the VIP
	__builtin_memcpy(&ip6->daddr, quote + 8, 16);  // its source
	icmp[0] = 2; // packet too big
	icmp[1] = 0;
	icmp[2] = 0;
	icmp[3] = 0;
	icmp[4] = mtu >> 24;
	icmp[5] = mtu >> 16;
	icmp[6] = mtu >> 8;
	icmp[7] = mtu;
	__builtin_memcpy(icmp + 8, quote, ICMP6_QUOTE);
	__u32 sum = sum16(&ip6->saddr, 32) + bpf_htons(8 + ICMP6_QUOTE) + bpf_htons(IPPROTO_ICMPV6) +
		    sum16(icmp, 8 + ICMP6_QUOTE);
	*(__u16 *)(icmp + 2) = ~fold(sum);
	return XDP_TX;
}

// GUE's source port: from the flow's hash, as the kernel's
// udp_flow_src_port does, in the default ephemeral range 32768..60999, so
// that routers on the way spread flows over their paths.
static __always_inline __be16 gue_sport(struct pkt *p)
{
	__u8 buf[36] = {};
	__builtin_memcpy(buf, p->saddr, 16);
	__builtin_memcpy(buf + 16, p->daddr, 16);
	__builtin_memcpy(buf + 32, &p->sport, 2);
	__builtin_memcpy(buf + 34, &p->dport, 2);
	return bpf_htons(32768 + scale(jhash(buf, 36, HASH_SEED), 60999 - 32768 + 1));
}

// encap sends p to TUN real server real: it pushes an outer IPv4 or IPv6
// header (and, for GUE, UDP and GUE headers, draft-ietf-intarea-gue
// version 0, as IPVS's ipvs_gue_encap writes them and the kernel's fou
// module reads them), and transmits toward the server as the kernel's
// routing table says: bpf_fib_lookup gives the egress interface, the next
// hop's MAC and the MTU. A packet that would exceed that MTU is dropped
// and counted (STAT_TOO_BIG), and answered with ICMP "fragmentation
// needed" if it is IPv4 with DF, ICMPv6 "packet too big" if it is IPv6,
// as IPVS answers it: XDP cannot fragment
// (IPVS fragments the outer IPv4 packet of an inner one without DF), and
// passing it on would deliver it to the director's own stack, which holds
// the VIP and would answer it as the server.
static __always_inline int encap(struct xdp_md *ctx, struct real_val *real, struct pkt *p)
{
	struct tunnel t = {};
	if (!inner((void *)(long)ctx->data, (void *)(long)ctx->data_end, p, &t))
		return XDP_DROP;
	int v6 = real->family == AF_INET6;
	__u32 iplen = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	__u32 hlen = iplen;
	if (real->tun == TUN_GUE)
		hlen += sizeof(struct udphdr) + 4;
	__u32 olen = p->len + hlen;
	__u8 proto = real->tun == TUN_GUE ? IPPROTO_UDP : t.proto;
	if (olen - (v6 ? iplen : 0) > 0xffff) {
		count(STAT_TOO_BIG);
		return XDP_DROP;
	}

	__u32 zero = 0;
	struct bpf_fib_lookup *fib = (void *)bpf_map_lookup_elem(&scratch, &zero);
	if (!fib)
		return XDP_DROP;
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->l4_protocol = proto;
	fib->tot_len = olen;
	fib->ifindex = ctx->ingress_ifindex;
	if (v6) {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, real->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, real->daddr, 16);
	} else {
		fib->family = AF_INET;
		fib->tos = t.tos;
		fib->ipv4_src = *(__be32 *)real->saddr;
		fib->ipv4_dst = *(__be32 *)real->daddr;
	}
	int rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		count(STAT_TOO_BIG);
		if (p->family == AF_INET && t.df && fib->mtu_result > hlen + 68)
			return frag_needed(ctx, fib->mtu_result - hlen);
		if (p->family == AF_INET6 && fib->mtu_result >= hlen + 1280)
			return too_big6(ctx, fib->mtu_result - hlen);
		return XDP_DROP;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(STAT_NO_ROUTE);
		return XDP_DROP;
	}
	__be16 sport = gue_sport(p);

	if (bpf_xdp_adjust_head(ctx, -(int)hlen))
		return XDP_DROP;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, fib->dmac, 6);
	__builtin_memcpy(eth->h_source, fib->smac, 6);
	struct udphdr *udp;
	__u32 s; // the outer pseudo header's sum, for GUE's checksum
	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		// Traffic class from the inner header, no flow label, as IPVS
		// writes it.
		ip6->version = 6;
		ip6->priority = t.tos >> 4;
		ip6->flow_lbl[0] = t.tos << 4;
		ip6->flow_lbl[1] = 0;
		ip6->flow_lbl[2] = 0;
		ip6->payload_len = bpf_htons(olen - iplen);
		ip6->nexthdr = proto;
		ip6->hop_limit = t.ttl;
		__builtin_memcpy(&ip6->saddr, real->saddr, 16);
		__builtin_memcpy(&ip6->daddr, real->daddr, 16);
		udp = (void *)(ip6 + 1);
		s = sum16(real->saddr, 32); // saddr, daddr: next to each other
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = t.tos;
		ip->tot_len = bpf_htons(olen);
		ip->id = (__be16)bpf_get_prandom_u32();
		ip->frag_off = t.df;
		ip->ttl = t.ttl;
		ip->protocol = proto;
		ip->check = 0;
		ip->saddr = *(__be32 *)real->saddr;
		ip->daddr = *(__be32 *)real->daddr;
		ip->check = ~fold(sum16(ip, sizeof(*ip)));
		udp = (void *)(ip + 1);
		s = sum16(real->saddr, 4) + sum16(real->daddr, 4);
	}

	if (real->tun == TUN_GUE) {
		__u8 *gue = (void *)(udp + 1);
		if ((void *)(gue + 4) > end)
			return XDP_DROP;
		udp->source = sport;
		udp->dest = real->port;
		udp->len = bpf_htons(olen - iplen);
		udp->check = 0;
		// Version 0, no control message, no optional fields (hlen 0),
		// the inner protocol, no flags.
		gue[0] = 0;
		gue[1] = t.proto;
		gue[2] = 0;
		gue[3] = 0;
		// The checksum with csum; over IPv6 always when it can be had
		// (RFC 8200 8.1 wants one; IPVS sends none with nocsum, which
		// only tunnels configured for it take, RFC 6935).
		if (t.sum && (real->csum || v6)) {
			s += bpf_htons(IPPROTO_UDP) + udp->len + sum16(udp, sizeof(*udp)) + sum16(gue, 4) + t.sum;
			__u16 c = ~fold(s);
			udp->check = c ? c : 0xffff;
		}
	}
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect_map(&tx_ports, fib->ifindex, 0);
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct pkt p = {};
	if (!parse(data, end, &p))
		return XDP_PASS;

	struct svc_key sk = {};
	__builtin_memcpy(sk.addr, p.daddr, 16);
	sk.port = p.dport;
	sk.proto = p.proto;
	sk.family = p.family;
	struct svc_val *svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc) {
		sk.port = 0;
		svc = bpf_map_lookup_elem(&services, &sk);
		if (!svc)
			return XDP_PASS;
	}

	__u32 in = ctx->ingress_ifindex;
	struct iface_val *ifc = bpf_map_lookup_elem(&ifaces, &in);
	struct ethhdr *eth = data;
	if (!ifc || !mac_eq(eth->h_dest, ifc->mac) || mac_eq(eth->h_source, ifc->mac))
		return XDP_PASS;
	struct local_key lk = {.family = p.family};
	__builtin_memcpy(lk.addr, p.daddr, 16);
	if (!bpf_map_lookup_elem(&locals, &lk))
		return XDP_PASS;
	if (svc->size == 0)
		return XDP_DROP;

	struct flow_key fk = {};
	fk.svc = svc->id;
	int persist = 0;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		fk.addr[i] = p.saddr[i] & svc->mask[i];
		persist |= svc->mask[i];
	}
	if (!persist) {
		__builtin_memcpy(fk.addr, p.saddr, 16);
		fk.port = p.sport;
	}

	__u64 now = bpf_ktime_get_ns();
	struct real_val *real = 0;
	__u32 rid = 0;
	struct flow_val *fv = bpf_map_lookup_elem(&flows, &fk);
	if (fv && now - fv->seen <= svc->timeout) {
		rid = fv->real;
		real = bpf_map_lookup_elem(&reals, &rid);
		if (real && (real->svc != svc->id || real->gen != fv->gen || !real->live))
			real = 0;
	}
	if (real) {
		fv->seen = now;
	} else {
		__u32 *id = schedule(svc, &p, fk.addr);
		if (!id)
			return XDP_DROP;
		rid = *id;
		real = bpf_map_lookup_elem(&reals, &rid);
		if (!real)
			return XDP_DROP;
		struct flow_val nv = {.real = rid, .gen = real->gen, .seen = now};
		bpf_map_update_elem(&flows, &fk, &nv, BPF_ANY);
	}

	struct counter *c = bpf_map_lookup_elem(&counters, &rid);
	if (c) {
		c->packets++;
		c->bytes += p.len;
	}
	if (real->tun != TUN_NONE)
		return encap(ctx, real, &p);
	__builtin_memcpy(eth->h_dest, real->dmac, 6);
	__builtin_memcpy(eth->h_source, real->smac, 6);
	if (real->ifindex == in)
		return XDP_TX;
	return bpf_redirect_map(&tx_ports, real->ifindex, 0);
}

char _license[] SEC("license") = "GPL";
