package keyspace

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// TestOldRecordsDecode: a record written by a release before the
// lifecycle (no trial_ends or purge_at, state 2 "read-only") decodes as a
// suspended tenant without deadlines, and encodes back to the same bytes:
// the new fields are omitted when zero.
func TestOldRecordsDecode(t *testing.T) {
	created := time.Unix(1767323045, 0)
	old := map[string]any{"id": uint64(7), "name": "acme", "state": uint8(2),
		"limits": map[string]any{"mk": uint64(5)}, "created": created}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(old); err != nil {
		t.Fatal(err)
	}
	rec, err := DecodeTenant(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != StateSuspended || rec.State.String() != "suspended" || !rec.TrialEnds.IsZero() || !rec.PurgeAt.IsZero() {
		t.Fatalf("old record decoded as %+v", rec)
	}
	if _, _, ok := rec.Deadline(); ok {
		t.Error("an old record has a deadline")
	}
	// The record as this release encodes it has no trace of the new
	// fields, so replicas of both releases store the same bytes.
	b, err := EncodeTenant(rec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("trial_ends")) || bytes.Contains(b, []byte("purge_at")) {
		t.Errorf("a record without deadlines encodes them: %q", b)
	}
	rec.State, rec.TrialEnds = StateTrial, created.Add(time.Hour)
	b, err = EncodeTenant(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeTenant(b)
	if err != nil || back.State != StateTrial || !back.TrialEnds.Equal(rec.TrialEnds) {
		t.Fatalf("a trial record round trip: %+v, %v", back, err)
	}
}

func TestParseAction(t *testing.T) {
	for _, s := range []string{"activate", "suspend", "cancel", "restore"} {
		a, err := ParseAction(s)
		if err != nil || a.String() != s {
			t.Errorf("ParseAction(%q) = %v, %v", s, a, err)
		}
	}
	for _, s := range []string{"", "expire", "purge", "Activate", "delete"} {
		if _, err := ParseAction(s); !errors.Is(err, ErrTransition) {
			t.Errorf("ParseAction(%q) = %v, want ErrTransition", s, err)
		}
	}
}
