//go:build ignore

/* Per-client accounting of Sia traffic.
 *
 * xdp_count (ingress, "down") and tc_count (egress, "up") share one parser
 * and one accounting function. Packets are classified before any counter map
 * is touched, so traffic that is not Sia's costs a parse and nothing else.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "types.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define EEXIST 17

/* Header offsets past this are not parsed; it keeps the verifier's view of
 * packet offsets bounded and is far beyond any real header chain. */
#define MAX_HEADER_OFF 4096
#define MAX_VLAN_TAGS 2
#define VLAN_TAG_LEN 4
/* RFC 8200 has each extension header at most once, destination options
 * twice: hop-by-hop, destination, routing, fragment, AH, ESP, destination
 * is the longest chain it allows. 8 takes that with one to spare; a
 * longer chain is not counted (see the README). */
#define MAX_IPV6_EXT_HEADERS 8
#define IPV4_FRAG_OFFSET_MASK 0x1fff
#define IPV6_FRAG_OFFSET_MASK 0xfff8

/* The port sets, set at load time: port_flags[port] holds enum port_flag
 * bits. A read-only array indexed by port costs one load per packet, where
 * a hash lookup would cost a helper call. */
volatile const __u8 port_flags[65536];

/* The counter map of one drain period. Userspace swaps it for an empty one
 * to drain; max_entries is set at load time. */
struct client_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct client_key);
	__type(value, struct client_traffic);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct client_map);
} clients SEC(".maps");

/* Room for proven clients when the counter map is full: a client the host
 * proves real (see proves) while the counter map has no room gets an entry
 * in this slot's map from then on. Its maps have the counter maps' layout
 * and fewer entries (set at load time). It is swapped and drained with the
 * counter map, one slot update after the other; each update waits for
 * running programs, so once both returned every increment is in exactly
 * one map out of the slots. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct client_map);
} proven_clients SEC(".maps");

/* The last client of each direction, per CPU: a per-CPU array indexed by
 * enum traffic_dir (see struct client_cache). Its maps take turns in
 * their slot as the counter maps do, swapped and drained with them: what
 * a cache held when it left the slot is read at the drain like a map. */
struct client_cache_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DIR_COUNT);
	__type(key, __u32);
	__type(value, struct client_cache);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct client_cache_map);
} last_clients SEC(".maps");

/* clang describes a struct that only a map definition names as a forward
 * declaration, which the loader cannot size: this gives the cache's value
 * type its full description, as overflow_key does for the counter maps'
 * key. */
static const struct client_cache empty_cache __attribute__((used));

/* cache_last_client turns the cache on; with it off (set at load time)
 * the verifier drops the cache's code and every packet is added to the
 * maps as it comes: the benchmark measures both in one run. */
volatile const bool cache_last_client = true;

static const struct client_key overflow_key;
static const struct client_traffic zero_traffic;
static const struct client_traffic proven_traffic = {.flags = CLIENT_PROVEN};

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

/* The first 8 bytes of an IPv6 header: all the parser needs of it but
 * the one address it keeps. Copying the whole 40-byte header and then the
 * address out of it made a known IPv6 client cost 8-17 ns added where an
 * IPv4 one cost 3-10; reading only these, and the address straight into
 * the key, 4-10 (BenchmarkPacketCost, eight runs of each, 2026-12-06). */
struct ipv6_start {
	__u8 version_class; /* version in the upper nibble */
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
};

/* An IPv6 header up to the address the parser keeps: the source of a
 * packet coming in, the destination of one going out. At TC a load may
 * take either of two ways (see LOAD), so one load of both parts keeps
 * the paths the verifier walks as few as for the whole header; at XDP,
 * where a load has one way, the parser reads the start and then the
 * address straight into the key. */
struct ipv6_to_saddr {
	struct ipv6_start start;
	struct client_key saddr;
};

struct ipv6_to_daddr {
	struct ipv6_start start;
	struct client_key saddr;
	struct client_key daddr;
};

struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

struct l4_ports {
	__be16 src;
	__be16 dst;
};

/* A packet being parsed. skb is NULL at XDP, where all headers are in the
 * linear buffer or not read at all. */
struct cursor {
	void *data;
	void *data_end;
	struct __sk_buff *skb;
};

/* LOAD copies the header at off into dst. Direct packet access where the
 * bytes are in the linear part; at TC the rest of a non-linear skb is read
 * with bpf_skb_load_bytes. Evaluates to 0 on success. */
#define LOAD(c, off, dst)                                                    \
	({                                                                   \
		int __err = -1;                                              \
		__u32 __off = (off);                                         \
		if (__off <= MAX_HEADER_OFF) {                               \
			void *__p = (c)->data + __off;                       \
			if (__p + sizeof(dst) <= (c)->data_end) {            \
				(dst) = *(typeof(dst) *)__p;                 \
				__err = 0;                                   \
			} else if ((c)->skb) {                               \
				__err = bpf_skb_load_bytes((c)->skb, __off,  \
							   &(dst),            \
							   sizeof(dst));      \
			}                                                    \
		}                                                            \
		__err;                                                       \
	})

/* port_index turns a port into an index into port_flags that every
 * verifier can bound. Verifiers before 6.18 forget the bounds of a
 * byte-swapped value (measured on 5.10, 6.1 and 6.12: every program was
 * refused with "math between map_value pointer and register with unbounded
 * min value"), and clang drops a plain "& 0xffff" on a __u16 as a no-op, so
 * the mask is written in asm, where the compiler must keep it. */
static __always_inline __u64 port_index(__u16 port)
{
	__u64 index = port;
	asm volatile("%0 &= 0xffff" : "+r"(index));
	return index;
}

/* classify returns the class of a TCP or UDP packet from its ports, or -1.
 * The local port decides; for consensus the remote port also counts, since
 * the host's syncer dials peers on their consensus port. */
static __always_inline int classify(__u8 proto, __u16 local, __u16 remote)
{
	__u8 flags = port_flags[port_index(local)];

	if (proto == IPPROTO_TCP) {
		if (flags & PORT_CONSENSUS)
			return CLASS_CONSENSUS;
		if (flags & PORT_SIAMUX)
			return CLASS_SIAMUX;
		if (port_flags[port_index(remote)] & PORT_CONSENSUS)
			return CLASS_CONSENSUS;
		return -1;
	}
	if (proto == IPPROTO_UDP && (flags & PORT_QUIC))
		return CLASS_QUIC;
	return -1;
}

static __always_inline void map_v4(struct client_key *key, __be32 addr)
{
	__builtin_memset(key, 0, 10);
	key->addr[10] = 0xff;
	key->addr[11] = 0xff;
	__builtin_memcpy(&key->addr[12], &addr, 4);
}

/* parse finds the client address of a Sia packet and returns its class, or
 * -1 for anything that is not Sia traffic. The client is the source address
 * of a packet coming in and the destination of one going out. l4_off is set
 * to the offset of the TCP or UDP header. */
static __always_inline int parse(struct cursor *c, enum traffic_dir dir,
				 struct client_key *key, __u32 *l4_off)
{
	__u32 off = offsetof(struct ethhdr, h_proto);
	__be16 proto;

	if (LOAD(c, off, proto))
		return -1;
	off = sizeof(struct ethhdr);

	/* A NIC with VLAN offload has already stripped the tag; parse both.
	 * Before TC the kernel moves the outer tag into the skb's metadata
	 * (vlan_present): it counts against the tags a frame may have, so a
	 * frame is counted, or not, the same at XDP and at TC. */
	int tags = MAX_VLAN_TAGS - (c->skb && c->skb->vlan_present);
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		if (i >= tags)
			return -1;
		struct vlan_tag tag;
		if (LOAD(c, off, tag))
			return -1;
		proto = tag.proto;
		off += sizeof(tag);
	}

	struct iphdr ip4;
	struct ipv6_start ip6;
	__u8 l4;

	if (proto == bpf_htons(ETH_P_IP)) {
		if (LOAD(c, off, ip4) || ip4.version != 4 || ip4.ihl < 5)
			return -1;
		/* Only the first fragment carries the ports. */
		if (ip4.frag_off & bpf_htons(IPV4_FRAG_OFFSET_MASK))
			return -1;
		l4 = ip4.protocol;
		off += ip4.ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		if (!c->skb) {
			/* XDP: the address straight into the key. */
			if (LOAD(c, off, ip6) ||
			    LOAD(c, off + (dir == DIR_DOWN ? offsetof(struct ipv6hdr, saddr)
							   : offsetof(struct ipv6hdr, daddr)),
				 *key))
				return -1;
		} else if (dir == DIR_DOWN) {
			struct ipv6_to_saddr h;
			if (LOAD(c, off, h))
				return -1;
			ip6 = h.start;
			*key = h.saddr;
		} else {
			struct ipv6_to_daddr h;
			if (LOAD(c, off, h))
				return -1;
			ip6 = h.start;
			*key = h.daddr;
		}
		if ((ip6.version_class >> 4) != 6)
			return -1;
		l4 = ip6.nexthdr;
		off += sizeof(struct ipv6hdr);
#pragma unroll
		for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
			if (l4 == IPPROTO_HOPOPTS || l4 == IPPROTO_ROUTING ||
			    l4 == IPPROTO_DSTOPTS) {
				struct ipv6_opt_hdr opt;
				if (LOAD(c, off, opt))
					return -1;
				l4 = opt.nexthdr;
				off += (opt.hdrlen + 1) * 8;
			} else if (l4 == IPPROTO_AH) {
				/* AH counts its length in 4-byte units, less 2. */
				struct ipv6_opt_hdr ah;
				if (LOAD(c, off, ah))
					return -1;
				l4 = ah.nexthdr;
				off += (ah.hdrlen + 2) * 4;
			} else if (l4 == IPPROTO_FRAGMENT) {
				struct ipv6_frag frag;
				if (LOAD(c, off, frag) ||
				    (frag.frag_off &
				     bpf_htons(IPV6_FRAG_OFFSET_MASK)))
					return -1;
				l4 = frag.nexthdr;
				off += sizeof(frag);
			} else {
				break;
			}
		}
	} else {
		return -1;
	}

	if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
		return -1;

	struct l4_ports ports;
	if (LOAD(c, off, ports))
		return -1;
	*l4_off = off;

	__u16 src = bpf_ntohs(ports.src), dst = bpf_ntohs(ports.dst);
	int class = dir == DIR_DOWN ? classify(l4, dst, src)
				    : classify(l4, src, dst);
	if (class < 0)
		return -1;

	if (proto == bpf_htons(ETH_P_IP))
		map_v4(key, dir == DIR_DOWN ? ip4.saddr : ip4.daddr);
	return class;
}

/* Bytes 12 and 13 of a TCP header: the data offset in 4-byte units (upper
 * nibble) and the flags. */
struct tcp_doff_flags {
	__u8 doff;
	__u8 flags;
};
#define TCP_DOFF_OFF 12
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
#define UDP_HEADER_LEN 8
#define QUIC_LONG_HEADER 0x80
#define QUIC_FIXED_BIT 0x40
/* The smallest QUIC datagram that proves its client. Before its handshake
 * completes, hostd's QUIC server (quic-go, quic.Listen: no 0-RTT, no
 * 0.5-RTT data) sends 1-RTT packets too: the NEW_CONNECTION_ID frames it
 * queues on reading the client's first Initial, at most 5 of at most 40
 * bytes, which with header and AEAD tag stay below 256 bytes. */
#define QUIC_PROOF_MIN_PAYLOAD 256

/* proves reports whether a packet the host sends shows that its client is
 * real, something a blind forger of the client's address cannot make the
 * host send:
 * - TCP: a segment with ACK set, neither SYN nor RST, and data. A SYN-ACK
 *   answers any SYN, an RST anything unexpected; and a forger that sent a
 *   SYN gets a pure ACK for an out-of-window segment from the half-open
 *   connection (tcp_check_req), so only data proves: the host sends data
 *   only on a connection whose handshake completed.
 * - QUIC: a short-header (1-RTT) datagram of QUIC_PROOF_MIN_PAYLOAD bytes
 *   or more. Long headers are the handshake; small 1-RTT packets can
 *   precede its completion (see QUIC_PROOF_MIN_PAYLOAD).
 * Only tc_count calls it: nothing that arrives proves anything.
 *
 * count calls it for every Sia packet leaving but those of a client its
 * cache holds proven already, before any counter map is touched, and it
 * reads with bpf_skb_load_bytes rather than LOAD: so the verifier walks
 * neither the maps' code nor a bounds check once per header layout the
 * parser allows. Measured on 6.18, instructions the verifier processed
 * for tc_count: 162k without the proof, 781k with it inside account (78%
 * of the limit), 300k with LOAD here, 167k called before account; with
 * the cache, 221k (216k with the cache off); 180k once an IPv6 header
 * is read only up to the address kept. */
static __always_inline bool proves(struct __sk_buff *skb, int class, __u32 l4_off)
{
	if (class == CLASS_QUIC) {
		/* A UDP GSO packet stands for several datagrams, of gso_size
		 * payload bytes each but the last: the first one decides. */
		__u32 payload = skb->gso_segs > 1 ? skb->gso_size
						   : skb->len - l4_off - UDP_HEADER_LEN;
		__u8 first;
		if (skb->len < l4_off + UDP_HEADER_LEN || payload < QUIC_PROOF_MIN_PAYLOAD ||
		    bpf_skb_load_bytes(skb, l4_off + UDP_HEADER_LEN, &first, sizeof(first)))
			return false;
		return (first & (QUIC_LONG_HEADER | QUIC_FIXED_BIT)) == QUIC_FIXED_BIT;
	}
	struct tcp_doff_flags hdr;
	if (bpf_skb_load_bytes(skb, l4_off + TCP_DOFF_OFF, &hdr, sizeof(hdr)))
		return false;
	return (hdr.flags & (TCP_FLAG_ACK | TCP_FLAG_SYN | TCP_FLAG_RST)) == TCP_FLAG_ACK &&
	       skb->len > l4_off + (hdr.doff >> 4) * 4;
}

/* entry_of returns where a client without an entry in the counter map is
 * counted: a new entry there while it has room; else its entry in the
 * proven map, made now if this packet proves it (proof); else the overflow
 * entry. Inserting with BPF_NOEXIST can lose the race to another CPU
 * (-EEXIST): then the entry exists, so look it up again. */
static __always_inline struct client_traffic *
entry_of(void *counters, const struct client_key *key, bool proof)
{
	__u32 slot = 0;
	void *proven = bpf_map_lookup_elem(&proven_clients, &slot);
	struct client_traffic *traffic;
	long err;

	if (proven) {
		traffic = bpf_map_lookup_elem(proven, key);
		if (traffic)
			return traffic;
	}
	err = bpf_map_update_elem(counters, key, &zero_traffic, BPF_NOEXIST);
	if (err == 0 || err == -EEXIST) {
		traffic = bpf_map_lookup_elem(counters, key);
		if (traffic)
			return traffic;
	}
	if (proven && proof) {
		err = bpf_map_update_elem(proven, key, &proven_traffic, BPF_NOEXIST);
		if (err == 0 || err == -EEXIST) {
			traffic = bpf_map_lookup_elem(proven, key);
			if (traffic)
				return traffic;
		}
	}
	return bpf_map_lookup_elem(counters, &overflow_key);
}

/* entry_for returns the entry in the maps a client's counts are added to:
 * its entry in the counter map, else where entry_of counts it. A packet
 * that proves the client (proof, see proves) marks the entry, with a
 * plain store, only while the mark is missing: racing CPUs store the same
 * value, and a proven client's line is not written again. */
static __always_inline struct client_traffic *entry_for(const struct client_key *key, bool proof)
{
	__u32 slot = 0;
	void *counters = bpf_map_lookup_elem(&clients, &slot);
	if (!counters)
		return NULL;

	struct client_traffic *traffic = bpf_map_lookup_elem(counters, key);
	if (!traffic)
		traffic = entry_of(counters, key, proof);
	if (traffic && proof && !(traffic->flags & CLIENT_PROVEN))
		traffic->flags = CLIENT_PROVEN;
	return traffic;
}

/* account adds one packet's bytes and frames to its client's entry in the
 * maps. A full map sends the packet to the overflow entry, which
 * userspace keeps in every counter map, so totals stay exact however many
 * addresses a sender forges. */
static __always_inline void account(const struct client_key *key, int class,
				    enum traffic_dir dir, bool proof,
				    __u64 bytes, __u64 packets)
{
	struct client_traffic *traffic = entry_for(key, proof);
	if (!traffic || class < 0 || class >= CLASS_COUNT)
		return;
	struct tally *tally = &traffic->t[class][dir];
	__sync_fetch_and_add(&tally->bytes, bytes);
	__sync_fetch_and_add(&tally->packets, packets);
}

/* flush adds what the cache holds to its client's entry in the maps, as
 * account would have packet by packet, and empties it. */
static __always_inline void flush(struct client_cache *cache, enum traffic_dir dir)
{
	if (!(cache->t[0].packets | cache->t[1].packets | cache->t[2].packets))
		return;
	struct client_traffic *traffic = entry_for(&cache->key, cache->flags & CLIENT_PROVEN);

#pragma unroll
	for (int class = 0; class < CLASS_COUNT; class++) {
		struct tally *t = &cache->t[class];
		if (!t->packets)
			continue;
		if (traffic) {
			__sync_fetch_and_add(&traffic->t[class][dir].bytes, t->bytes);
			__sync_fetch_and_add(&traffic->t[class][dir].packets, t->packets);
		}
		t->bytes = 0;
		t->packets = 0;
	}
}

static __always_inline bool same_client(const struct client_key *a, const struct client_key *b)
{
	const __u64 *x = (const __u64 *)a->addr, *y = (const __u64 *)b->addr;
	return x[0] == y[0] && x[1] == y[1];
}

/* count adds one packet to its client through this CPU's cache of the
 * last client in dir. proof_skb is the packet when it may prove its
 * client (see proves): only at egress.
 *
 * The same client again is a hit: a plain add to the cache, which only
 * this CPU writes; XDP and TC programs run with bottom halves off and do
 * not interrupt each other on a CPU. Anything else is a miss and costs
 * one lookup in the maps: another client flushes the cache's client to
 * them (where a new client gets its entry, or the overflow entry, then
 * rather than on its first packet) and takes its place.
 *
 * A proof makes and marks the client's entry at once, so from its proof
 * on a client has room in a full map and its packets in any cache find
 * that entry when flushed: the cache's own client's first proof flushes
 * the cache; another client's proof is added to the maps as it comes,
 * and that client takes the cache with its next proof (proved). A
 * client proven in the cache skips the check, a helper call. */
static __always_inline void count(const struct client_key *key, int class,
				  enum traffic_dir dir, struct __sk_buff *proof_skb,
				  __u32 l4_off, __u64 bytes, __u64 packets)
{
	__u32 slot = 0, index = dir;
	void *caches = cache_last_client ? bpf_map_lookup_elem(&last_clients, &slot) : NULL;
	struct client_cache *cache = caches ? bpf_map_lookup_elem(caches, &index) : NULL;

	if (!cache || class < 0 || class >= CLASS_COUNT) {
		account(key, class, dir, proof_skb && proves(proof_skb, class, l4_off), bytes, packets);
		return;
	}
	bool same = same_client(&cache->key, key);
	bool proof = proof_skb && !(same && (cache->flags & CLIENT_PROVEN)) &&
		     proves(proof_skb, class, l4_off);
	if (same && !proof) {
		cache->t[class].bytes += bytes;
		cache->t[class].packets += packets;
		cache->hits++;
		return;
	}
	cache->misses++;
	if (proof && !same && !same_client(&cache->proved, key)) {
		account(key, class, dir, true, bytes, packets);
		cache->proved = *key;
		return;
	}
	if (!same) {
		flush(cache, dir);
		cache->key = *key;
		cache->flags = 0;
	}
	cache->t[class].bytes += bytes;
	cache->t[class].packets += packets;
	if (proof) {
		cache->flags = CLIENT_PROVEN;
		/* Its entry is marked already when it was proved. */
		if (same)
			flush(cache, dir);
	}
}

/* count_xdp counts an incoming frame. With frags the frame may span several
 * buffers (multi-buffer XDP, 5.18+), whose length only bpf_xdp_get_buff_len
 * knows; only Sia packets pay for that helper call. */
static __always_inline void count_xdp(struct xdp_md *ctx, bool frags)
{
	struct cursor c = {
		.data = (void *)(long)ctx->data,
		.data_end = (void *)(long)ctx->data_end,
	};
	struct client_key key;
	__u32 l4_off;
	int class = parse(&c, DIR_DOWN, &key, &l4_off);

	if (class < 0)
		return;
	__u64 bytes = frags ? bpf_xdp_get_buff_len(ctx)
			    : (__u64)(c.data_end - c.data);
	count(&key, class, DIR_DOWN, NULL, 0, bytes, 1);
}

/* xdp_count is for kernels before 5.18, which have no multi-buffer XDP. */
SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	count_xdp(ctx, false);
	return XDP_PASS;
}

/* xdp_count_frags is preferred where the kernel has multi-buffer XDP:
 * drivers refuse native mode at a large MTU to programs without the
 * xdp.frags section. */
SEC("xdp.frags")
int xdp_count_frags(struct xdp_md *ctx)
{
	count_xdp(ctx, true);
	return XDP_PASS;
}

static __always_inline struct cursor skb_cursor(struct __sk_buff *skb)
{
	return (struct cursor){
		.data = (void *)(long)skb->data,
		.data_end = (void *)(long)skb->data_end,
		.skb = skb,
	};
}

/* metadata_tag_len is what a VLAN tag held in the skb's metadata adds to
 * the packets' frames on the wire: the kernel moved it there on receive,
 * or a VLAN device put it there for the NIC to insert on transmit. Either
 * way skb->len and wire_len leave it out. */
static __always_inline __u64 metadata_tag_len(struct __sk_buff *skb, __u64 packets)
{
	return skb->vlan_present ? packets * VLAN_TAG_LEN : 0;
}

/* tc_count runs at egress. A GSO super-packet stands for several frames:
 * wire_len is its length on the wire after segmentation, gso_segs its frame
 * count. It returns TC_ACT_UNSPEC (TCX_NEXT) so later programs still run. */
SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	struct cursor c = skb_cursor(skb);
	struct client_key key;
	__u32 l4_off;
	int class = parse(&c, DIR_UP, &key, &l4_off);

	if (class >= 0) {
		__u64 bytes = skb->wire_len ? skb->wire_len : skb->len;
		__u64 packets = skb->gso_segs ? skb->gso_segs : 1;
		count(&key, class, DIR_UP, skb, l4_off, bytes + metadata_tag_len(skb, packets), packets);
	}
	return TC_ACT_UNSPEC;
}

/* tc_ingress_count counts incoming packets where XDP is not used. Unlike
 * generic XDP it sees what GRO merged as one skb with gso_segs frames, each
 * of which carried its own copy of the headers in front of the payload:
 * the frames' bytes are skb->len plus (gso_segs - 1) headers. */
SEC("tc")
int tc_ingress_count(struct __sk_buff *skb)
{
	struct cursor c = skb_cursor(skb);
	struct client_key key;
	__u32 l4_off;
	int class = parse(&c, DIR_DOWN, &key, &l4_off);

	if (class < 0)
		return TC_ACT_UNSPEC;
	__u64 bytes = skb->len;
	__u64 packets = skb->gso_segs ? skb->gso_segs : 1;
	if (packets > 1) {
		/* UDP headers are 8 bytes; a TCP header's length is its data
		 * offset, in the upper nibble of byte 12. */
		__u32 l4_len = 8;
		if (class != CLASS_QUIC) {
			__u8 doff;
			if (LOAD(&c, l4_off + 12, doff) == 0)
				l4_len = (doff >> 4) * 4;
		}
		bytes += (packets - 1) * (l4_off + l4_len);
	}
	count(&key, class, DIR_DOWN, NULL, 0, bytes + metadata_tag_len(skb, packets), packets);
	return TC_ACT_UNSPEC;
}
