package command

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/tenantkv/tenantkv/keyspace"
)

// randomTenantWrite makes a TenantWrite with lengths around every boundary
// of the msgpack forms.
func randomTenantWrite(r *rand.Rand) *TenantWrite {
	blob := func() []byte {
		switch r.IntN(6) {
		case 0:
			return nil
		case 1:
			return []byte{}
		case 2:
			return bytes.Repeat([]byte{1}, 250+r.IntN(10))
		case 3:
			return bytes.Repeat([]byte{2}, 65530+r.IntN(10))
		}
		return []byte{byte(r.IntN(256))}
	}
	names := []string{"", "a", "acme-corp", string(bytes.Repeat([]byte("n"), 31+r.IntN(3)))}
	c := &TenantWrite{TenantID: 1 + uint64ID(r), TenantName: names[r.IntN(len(names))]}
	if r.IntN(3) > 0 {
		c.At = r.Int64() - r.Int64()
	}
	switch r.IntN(5) {
	case 0: // nil ops
	case 1:
		c.Ops = []Op{}
	default:
		n := r.IntN(20)
		if r.IntN(4) == 0 {
			n = 16 + r.IntN(10)
		}
		for range n {
			c.Ops = append(c.Ops, Op{Kind: OpKind(r.IntN(9)), Key: blob(), Value: blob(), End: blob()})
		}
	}
	return c
}

func uint64ID(r *rand.Rand) keyspace.TenantID { return keyspace.TenantID(r.Uint64() >> r.IntN(64)) }

// libraryEncode is Encode's general path, through the library.
func libraryEncode(t testing.TB, cmd Command) []byte {
	var buf bytes.Buffer
	buf.WriteByte(Version)
	buf.WriteByte(byte(cmd.Type()))
	if err := marshalTo(&buf, cmd); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// libraryDecode is Decode's general path, through the library.
func libraryDecode(b []byte) (*TenantWrite, error) {
	var w TenantWrite
	if err := Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

func TestTenantWriteCodecMatchesLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	for i := range 400 {
		c := randomTenantWrite(r)
		fast, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if lib := libraryEncode(t, c); !bytes.Equal(fast, lib) {
			t.Fatalf("command %d: encodings differ (%d and %d bytes)", i, len(fast), len(lib))
		}
		got, ok := decodeTenantWriteFast(fast[2:])
		if !ok {
			t.Fatalf("command %d: the fast decoder refused the canonical form", i)
		}
		want, err := libraryDecode(fast[2:])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("command %d: decoders disagree:\n fast %+v\n lib  %+v", i, got, want)
		}
	}
}

// FuzzTenantWriteFastDecode: wherever the fast decoder accepts bytes, the
// library decodes them to the same command.
func FuzzTenantWriteFastDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 8 {
		c := randomTenantWrite(r)
		if len(c.Ops) > 3 {
			c.Ops = c.Ops[:3]
		}
		for i := range c.Ops {
			c.Ops[i].Value = c.Ops[i].Value[:min(len(c.Ops[i].Value), 8)]
			c.Ops[i].Key = c.Ops[i].Key[:min(len(c.Ops[i].Key), 8)]
			c.Ops[i].End = c.Ops[i].End[:min(len(c.Ops[i].End), 8)]
		}
		b, _ := Encode(c)
		f.Add(b[2:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeTenantWriteFast(b)
		if !ok {
			return
		}
		want, err := libraryDecode(b)
		if err != nil {
			t.Fatalf("fast accepted what the library refuses: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoders disagree:\n fast %+v\n lib  %+v", got, want)
		}
	})
}
