package pgsync

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// machineIDPath is systemd's machine id: set once when the system is
// installed, kept across host name changes and reboots.
const machineIDPath = "/etc/machine-id"

// maxHostID bounds HOST_ID: it is on every central row.
const maxHostID = 128

// HostID returns the id that keeps this host's rows apart from the other
// hosts' in the central tables (and at package httpsync's endpoint), and where it came from: HOST_ID when set,
// else the machine id, else the host name. The machine id is the default
// because it stays when a host is renamed and differs between hosts
// cloned with the same name; the host name goes to collector_hosts beside
// it, for people.
func HostID(configured string) (id, from string, err error) {
	if configured != "" {
		if err := checkHostID(configured); err != nil {
			return "", "", fmt.Errorf("HOST_ID=%q: %w", configured, err)
		}
		return configured, "HOST_ID", nil
	}
	if b, err := os.ReadFile(machineIDPath); err == nil {
		if id := strings.TrimSpace(string(b)); checkHostID(id) == nil {
			return id, machineIDPath, nil
		}
	}
	name, err := os.Hostname()
	if err == nil {
		err = checkHostID(name)
	}
	if err != nil {
		return "", "", fmt.Errorf("no HOST_ID, no %s and no host name to name this host's rows (%v): set HOST_ID", machineIDPath, err)
	}
	return name, "host name", nil
}

func checkHostID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > maxHostID:
		return fmt.Errorf("%d bytes; accepted: up to %d", len(id), maxHostID)
	case !utf8.ValidString(id) || strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return errors.New("not printable text; accepted: letters, digits, punctuation, spaces")
	}
	return nil
}
