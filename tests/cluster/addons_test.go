package cluster

import "testing"

func TestWithoutHost(t *testing.T) {
	for _, tc := range []struct{ name, hosts, want string }{
		{"empty", "", ""},
		{"other names kept", "127.0.0.1 localhost\n::1 localhost\n", "127.0.0.1 localhost\n::1 localhost\n"},
		{"the name's entries go", "127.0.0.1 localhost\n198.51.100.10 kcp.a # kcp-tmc cluster e2e\n198.51.100.11 kcp.a\n", "127.0.0.1 localhost\n"},
		{"a longer name stays", "198.51.100.10 kcp.a.b\n", "198.51.100.10 kcp.a.b\n"},
		{"no final newline", "127.0.0.1 localhost", "127.0.0.1 localhost\n"},
		{"an entry with aliases stays", "10.0.0.1 kcp.a other\n", "10.0.0.1 kcp.a other\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withoutHost(tc.hosts, "kcp.a"); got != tc.want {
				t.Errorf("withoutHost(%q) = %q, want %q", tc.hosts, got, tc.want)
			}
		})
	}
}
