// Package loopback hands out TCP ports for programs started on this
// machine (the drill's scratch etcd members, the tests' kcp, etcd and
// kube-apiservers).
//
// A port the kernel picked for a listener on :0 is an ephemeral port: once
// that listener is closed, any outgoing connection may take it as its
// source port before the program meant for it binds, and the program
// fails with "address already in use" (seen: kcp's own connections took
// the front-proxy's port in the 45 s between choosing it and starting the
// front-proxy). Ports below the kernel's ephemeral range are only ever
// taken by an explicit bind, so those are handed out instead.
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the first port handed out: above the well-known and most
// registered service ports a developer machine may run.
const lowest = 10000

// ephemeralRange is where Linux documents it; other systems get the IANA
// dynamic range's start.
const ephemeralRange = "/proc/sys/net/ipv4/ip_local_port_range"

var (
	mu   sync.Mutex
	next int // the port to try next; 0 until the first call
)

// FreePorts returns n distinct ports free on every address, below the
// kernel's ephemeral range, holding them all until it returns. Ports are
// handed out round-robin from a random start, so calls in this process
// never repeat one while unused ones remain, and concurrent test
// processes rarely meet.
func FreePorts(n int) ([]int, error) {
	mu.Lock()
	defer mu.Unlock()
	hi := ephemeralStart()
	if hi-lowest < n {
		return nil, fmt.Errorf("reserving %d loopback ports: only %d ports between %d and the ephemeral range's start %d", n, hi-lowest, lowest, hi)
	}
	if next < lowest || next >= hi {
		next = lowest + rand.IntN(hi-lowest)
	}
	var ports []int
	for tried := 0; len(ports) < n; tried++ {
		if tried == hi-lowest {
			return nil, fmt.Errorf("reserving %d loopback ports: %d free of %d between %d and %d", n, len(ports), hi-lowest, lowest, hi)
		}
		p := next
		if next++; next == hi {
			next = lowest
		}
		// ":p" conflicts with a listener on any address, as a program
		// binding 0.0.0.0 (the front-proxy) would.
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		defer l.Close()
		ports = append(ports, p)
	}
	return ports, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	if b, err := os.ReadFile(ephemeralRange); err == nil {
		if lo, ok := parseRange(string(b)); ok {
			return lo
		}
	}
	return 49152
}

// parseRange reads ip_local_port_range ("32768\t60999\n") and returns its
// start, if it is a usable port.
func parseRange(s string) (int, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= lowest || lo > 65535 {
		return 0, false
	}
	return lo, true
}

// TB is the part of testing.TB MustFreePorts uses.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// MustFreePorts is FreePorts for tests.
func MustFreePorts(t TB, n int) []int {
	t.Helper()
	ports, err := FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}
