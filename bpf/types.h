/* Structs and constants shared by the datapath and Go (bpf2go -type). */
#ifndef COLLECTOR_TYPES_H
#define COLLECTOR_TYPES_H

#include <linux/types.h>

/* Classes and directions index struct client_traffic; Go mirrors the order
 * in bpfgo/sample.go. */
enum traffic_class {
	CLASS_CONSENSUS = 0,
	CLASS_SIAMUX = 1,
	CLASS_QUIC = 2,
	CLASS_COUNT = 3,
};

enum traffic_dir {
	DIR_UP = 0,   /* host -> client, TC egress */
	DIR_DOWN = 1, /* client -> host, XDP ingress */
	DIR_COUNT = 2,
};

/* Bits of port_flags[port]: which port sets a port belongs to. */
enum port_flag {
	PORT_CONSENSUS = 1 << 0, /* TCP */
	PORT_SIAMUX = 1 << 1,    /* TCP */
	PORT_QUIC = 1 << 2,      /* UDP */
};

/* A client address; IPv4 is stored v4-mapped (::ffff:a.b.c.d). The
 * unspecified address :: is the overflow entry. Aligned so two keys
 * compare as two 8-byte words: the verifier refuses misaligned stack
 * reads. */
struct client_key {
	__u8 addr[16];
} __attribute__((aligned(8)));

struct tally {
	__u64 bytes;   /* L2 frame bytes, FCS excluded */
	__u64 packets; /* frames on the wire */
};

/* Bits of client_traffic.flags. */
enum client_flag {
	/* The host sent the client what a blind forger cannot make it send
	 * (see proves() in collector.c). */
	CLIENT_PROVEN = 1 << 0,
};

struct client_traffic {
	struct tally t[CLASS_COUNT][DIR_COUNT];
	__u64 flags; /* enum client_flag bits */
};

/* One CPU's cache of the last client it counted in one direction: what
 * that client sent since it came into the cache, not yet added to its
 * entry in the maps. A packet of the same client is added here, with no
 * hash lookup and no atomic: only this CPU writes here, and networking
 * programs do not interrupt each other on a CPU. */
struct client_cache {
	struct client_key key;
	struct tally t[CLASS_COUNT];
	/* CLIENT_PROVEN: the client proved itself in this cache, and its
	 * entry in the maps is marked. */
	__u64 flags;
	/* The last other client that proved itself here: its entry in the
	 * maps is made and marked, so its next proof takes the cache. */
	struct client_key proved;
	/* Packets counted here (hits) and those that cost a lookup in the
	 * maps (misses): the cache's hit rate. */
	__u64 hits;
	__u64 misses;
};

#endif
