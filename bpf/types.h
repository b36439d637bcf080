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
 * unspecified address :: is the overflow entry. */
struct client_key {
	__u8 addr[16];
};

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

#endif
