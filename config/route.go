package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultRouteInterface returns the interface of the IPv4 default route,
// else of the IPv6 one, read from procNet (/proc/net in the daemon).
func DefaultRouteInterface(procNet string) (string, error) {
	// /proc/net/route: Iface Destination Gateway Flags ... Mask ...
	if iface, err := findRoute(filepath.Join(procNet, "route"), func(f []string) (string, bool) {
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			return "", false
		}
		return f[0], true
	}); err != nil || iface != "" {
		return iface, err
	}
	// /proc/net/ipv6_route: dest dest_len src src_len next metric ref use flags iface
	iface, err := findRoute(filepath.Join(procNet, "ipv6_route"), func(f []string) (string, bool) {
		if len(f) != 10 || f[1] != "00" || strings.Trim(f[0], "0") != "" || f[9] == "lo" {
			return "", false
		}
		return f[9], true
	})
	if err == nil && iface == "" {
		err = fmt.Errorf("no default route in %s; set INTERFACE", procNet)
	}
	return iface, err
}

func findRoute(path string, match func([]string) (string, bool)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("find the default route: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if iface, ok := match(strings.Fields(sc.Text())); ok {
			return iface, nil
		}
	}
	return "", sc.Err()
}
