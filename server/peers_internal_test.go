package server

import "testing"

func TestRequireLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:7401", "127.8.9.10:0", "[::1]:7401", "localhost:7401"} {
		if err := requireLoopback(t.Context(), addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:7401", "[::]:7401", ":7401", "10.0.0.5:7401", "[2001:db8::1]:7401", "nohost", "tenantkv-no-such-host.invalid:7401"} {
		if err := requireLoopback(t.Context(), addr); err == nil {
			t.Errorf("%s: taken for loopback", addr)
		}
	}
}
