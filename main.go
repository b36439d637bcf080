// Command collector counts, per remote IP address, the bytes and packets a
// Sia host exchanges on its consensus, siamux and QUIC ports, with an XDP
// program on ingress and a TC program on egress, and stores them minute by
// minute in SQLite. `collector help` lists its commands (package cli);
// collector.service runs `collector run`.
package main

import (
	"os"

	"github.com/back2basic/collector/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
