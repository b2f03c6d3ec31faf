package command

import "testing"

// FuzzDecodeBatch checks that no batch entry makes the decoder panic or
// return commands outside the entry.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch([][]byte{{1, 2, 3}, {}, {4}})[2:])
	f.Add([]byte{1, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		subs, err := DecodeBatch(append([]byte{Version, byte(TypeBatch)}, b...))
		if err != nil {
			return
		}
		if len(subs) == 0 || len(subs) > MaxBatchCommands {
			t.Fatalf("%d commands", len(subs))
		}
		n := 0
		for _, s := range subs {
			n += len(s)
		}
		if n > len(b) {
			t.Fatalf("commands of %d bytes from %d", n, len(b))
		}
		again, err := DecodeBatch(EncodeBatch(subs))
		if err != nil || len(again) != len(subs) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
