package testcluster

import (
	"context"
	"errors"
	"testing"
)

func TestSeedReplaysTheEnvironment(t *testing.T) {
	t.Setenv(SeedEnv, "42")
	if got := Seed(t); got != 42 {
		t.Fatalf("Seed with %s=42: %d", SeedEnv, got)
	}
	a, b := Rand(t).Uint64(), Rand(t).Uint64()
	if a != b {
		t.Fatalf("two generators of one seed differ: %d, %d", a, b)
	}
	t.Setenv(SeedEnv, "18446744073709551615") // logged as unsigned by older tests
	if got := Seed(t); got != -1 {
		t.Fatalf("Seed of the largest unsigned seed: %d", got)
	}
}

func TestPollStopsOnAPermanentError(t *testing.T) {
	calls := 0
	boom := errors.New("boom")
	err := Poll(context.Background(), func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return Permanent(boom)
	})
	if err != boom || calls != 3 {
		t.Fatalf("Poll = %v after %d calls; want boom after 3", err, calls)
	}
}

func TestOnFreePortsRetriesAnAddressInUse(t *testing.T) {
	var seen [][]string
	err := OnFreePorts(2, "", func(ports []string) error {
		seen = append(seen, ports)
		if len(seen) < 2 {
			return ErrAddrInUse
		}
		return nil
	})
	if err != nil || len(seen) != 2 || len(seen[1]) != 2 || seen[1][0] == seen[1][1] {
		t.Fatalf("OnFreePorts = %v, attempts %v", err, seen)
	}
}

func TestReadyLine(t *testing.T) {
	out := "noise\ntenantkv: node n1 ready: clients on 127.0.0.1:1, raft on 127.0.0.1:2, http on 127.0.0.1:3, data in d, x\n"
	line := ReadyLine(out)
	p := &Process{}
	p.parseReadyLine(line)
	if p.ID != "n1" || p.Addr != "127.0.0.1:1" || p.HTTPAddr != "127.0.0.1:3" {
		t.Fatalf("ready line %q parsed as %q %q %q", line, p.ID, p.Addr, p.HTTPAddr)
	}
}
