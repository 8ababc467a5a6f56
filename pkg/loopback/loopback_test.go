package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"32768\t60999\n", 32768, true},
		{"49152 65535", 49152, true},
		{"1024 65535", 0, false}, // no room below it: the caller falls back
		{"", 0, false},
		{"x 60999", 0, false},
		{"32768", 0, false},
	} {
		got, ok := parseRange(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRange(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// The ports are what a program needs: distinct across calls, bindable on
// every address, and never ones the kernel gives outgoing connections.
func TestFreePorts(t *testing.T) {
	hi := ephemeralStart()
	seen := map[int]bool{}
	for range 20 {
		for _, p := range MustFreePorts(t, 5) {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			if p < lowest || p >= hi {
				t.Errorf("port %d outside [%d, %d): the kernel's ephemeral range starts at %d", p, lowest, hi, hi)
			}
			l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
			if err != nil {
				t.Fatalf("port %d handed out but not bindable: %v", p, err)
			}
			l.Close()
		}
	}
}

// A port something listens on is skipped.
func TestFreePortsSkipsBusy(t *testing.T) {
	busy := MustFreePorts(t, 1)[0]
	l, err := net.Listen("tcp", ":"+strconv.Itoa(busy))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mu.Lock()
	next = busy
	mu.Unlock()
	for _, p := range MustFreePorts(t, 3) {
		if p == busy {
			t.Fatalf("port %d is listened on but was handed out", p)
		}
	}
}
