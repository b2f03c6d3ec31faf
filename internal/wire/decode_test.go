package wire

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// tinyBatch is a batch request of n four-byte mutations ({"k": kind}).
func tinyBatch(n int, kind byte) []byte {
	body := []byte{0x83, 0xa1, 'i', 0x01, 0xa1, 'o', byte(OpBatch), 0xa2, 'm', 'u', 0xdd}
	body = binary.BigEndian.AppendUint32(body, uint32(n))
	for range n {
		body = append(body, 0x81, 0xa1, 'k', kind)
	}
	return body
}

// TestDecodeTinyMutationsAllocation measures what decoding a 16 MiB frame
// of four-byte mutations allocates per frame byte: 40 before batches had
// their own decoder (the library copied the slice it grew), at most
// 1 + sizeof(Mutation)/4 = 21 now, and DecodeCost announces it.
func TestDecodeTinyMutationsAllocation(t *testing.T) {
	body := tinyBatch((DefaultMaxFrame-64)/4, MutDeleteRange)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	var req Request
	if err := DecodeRequest(body, &req); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	perByte := float64(alloc) / float64(len(body))
	t.Logf("frame of %d bytes, %d mutations: %d MiB allocated, %.1f bytes per frame byte, %d allocations; DecodeCost %d MiB",
		len(body), len(req.Muts), alloc>>20, perByte, m1.Mallocs-m0.Mallocs, func() int { c, _, _ := DecodeCost(body); return c }()>>20)
	if len(req.Muts) != (DefaultMaxFrame-64)/4 || req.Muts[7].Kind != MutDeleteRange {
		t.Fatalf("decoded %d mutations, the eighth %+v", len(req.Muts), req.Muts[7])
	}
	if perByte > 1+float64(sizeofMutation)/minMutationBytes+0.5 {
		t.Errorf("decoding allocated %.1f bytes per frame byte", perByte)
	}
	if c, id, op := DecodeCost(body); uint64(c) < alloc || id != 1 || op != OpBatch {
		t.Errorf("DecodeCost %d (id %d, op %v) is below what decoding allocated, %d", c, id, op, alloc)
	}
}

// TestDecodeMutationsLikeLibrary checks that batches decode as the msgpack
// library decodes them, fields of every encoding included, and that the
// byte fields do not alias the frame or each other's capacity.
func TestDecodeMutationsLikeLibrary(t *testing.T) {
	req := &Request{ID: 9, Op: OpBatch, Tenant: "acme", Muts: []Mutation{
		{Kind: MutSet, Key: []byte("k1"), Value: []byte{}},
		{Kind: MutDelete, Key: bytes.Repeat([]byte("k"), 300)},
		{Kind: MutDeleteRange, Key: []byte("a"), End: bytes.Repeat([]byte("z"), 70000)},
		{Kind: MutSet, Key: []byte("k2"), Value: bytes.Repeat([]byte("v"), 40)},
		{},
	}}
	body, err := AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	var got, want Request
	if err := DecodeRequest(body, &got); err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nthe library decodes\n%+v", got, want)
	}
	for i := range body {
		body[i] = 0
	}
	if string(got.Muts[0].Key) != "k1" || string(got.Muts[3].Value) != strings.Repeat("v", 40) {
		t.Fatalf("decoded mutations alias the frame: %+v", got.Muts[0])
	}
	got.Muts[0].Key = append(got.Muts[0].Key, 'x')
	if string(got.Muts[1].Key[:1]) != "k" {
		t.Fatal("appending to a key wrote over the next field")
	}
	// Unknown fields, strings for bytes, wide integers for the kind.
	odd := []byte{0x82, 0xa1, 'o', byte(OpBatch), 0xa2, 'm', 'u', 0x91,
		0x84, 0xa1, 'x', 0x92, 0x01, 0x81, 0xa1, 'y', 0x02, 0xa1, 'k', 0xcd, 0x01, 0x01, 0xa3, 'k', 'e', 'y', 0xa2, 'a', 'b', 0xa1, 'v', 0xc0}
	if err := DecodeRequest(odd, &got); err != nil {
		t.Fatal(err)
	}
	want = Request{}
	if err := unmarshal(odd, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nthe library decodes\n%+v", got, want)
	}
	// More mutations announced than four bytes each could hold.
	bad := []byte{0x82, 0xa1, 'o', byte(OpBatch), 0xa2, 'm', 'u', 0x93, 0xc0, 0xc0, 0xc0}
	if err := DecodeRequest(bad, &got); err == nil {
		t.Fatal("three one-byte mutations decoded")
	}
}
