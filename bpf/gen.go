// Package bpf holds the datapath: one C program with an XDP entry for
// ingress and a TC entry for egress, and the Go bindings bpf2go generates
// from it. The generated collector_bpfel.{go,o} are committed so that
// building needs only Go; `make generate` rebuilds them with clang.
//
// The programs need kernel 5.15 or newer; xdp_count_frags needs 5.18.
package bpf

//go:generate go tool bpf2go -target bpfel -tags linux -type client_key -type client_traffic -type tally -type client_cache Collector collector.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
