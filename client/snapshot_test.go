package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tenantkv/tenantkv/client"
)

// readSnapshot opens a snapshot file held in b and reads its body to the
// end, returning the header and the first error.
func readSnapshot(b []byte) (*client.SnapshotHeader, []byte, error) {
	h, body, err := client.OpenSnapshotFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(body)
	return h, data, err
}

// A saved snapshot file opens with the state's header, and any changed
// byte or a different length is refused.
func TestSaveSnapshotFile(t *testing.T) {
	c := newTxCluster(t, 3)
	ctx := t.Context()
	db := c.tenant(ctx, "acme", nil)
	for i := range 100 {
		if err := db.Tenant("").Set(ctx, fmt.Appendf(nil, "k%03d", i), bytes.Repeat([]byte{byte(i)}, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	admin := c.open(ctx, c.token)
	defer admin.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "backup.tkvsnap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A stale, longer file in the way is cut to the backup's length.
	if _, err := f.Write(make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	var calls int
	sum, err := admin.SaveSnapshot(ctx, f, &client.SnapshotOptions{Progress: func(p client.SnapshotProgress) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || sum.NodeID == "" || sum.Header.AppliedIndex == 0 || sum.Header.Records < 100 {
		t.Fatalf("summary %+v after %d progress calls", sum, calls)
	}
	file, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(file)) != sum.Header.FileSize() {
		t.Fatalf("file of %d bytes, header says %d", len(file), sum.Header.FileSize())
	}
	h, body, err := readSnapshot(file)
	if err != nil {
		t.Fatal(err)
	}
	if *h != sum.Header || uint64(len(body)) != h.Size {
		t.Fatalf("header read back %+v, written %+v; body %d bytes", *h, sum.Header, len(body))
	}

	for _, n := range []int{0, 10, 71, 72, len(file) / 2, len(file) - 33, len(file) - 1} {
		if _, _, err := readSnapshot(file[:n]); !errors.Is(err, client.ErrCorruptSnapshot) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	if _, _, err := readSnapshot(append(bytes.Clone(file), 0)); !errors.Is(err, client.ErrCorruptSnapshot) {
		t.Fatalf("a byte appended: %v", err)
	}
	// Every byte of the header and the trailer, a sample of the body's.
	var at []int
	for i := range 72 {
		at = append(at, i, len(file)-1-i%32)
	}
	for i := 72; i < len(file); i += max(1, len(file)/500) {
		at = append(at, i)
	}
	for _, i := range at {
		bad := bytes.Clone(file)
		bad[i] ^= 0x01
		if _, _, err := readSnapshot(bad); !errors.Is(err, client.ErrCorruptSnapshot) {
			t.Fatalf("byte %d of %d changed: %v", i, len(file), err)
		}
	}
}
