// The same constraint as collector_bpfel.go, whose embedded object this
// hashes.
//go:build (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm) && linux

package bpf

import (
	"crypto/sha256"
	"encoding/hex"
)

// ObjectSHA256 is the hex SHA-256 of the BPF object built into this
// binary, as `sha256sum bpf/collector_bpfel.o` prints it: two binaries
// with the same hash run the same datapath, whatever their version says.
func ObjectSHA256() string {
	sum := sha256.Sum256(_CollectorBytes)
	return hex.EncodeToString(sum[:])
}
