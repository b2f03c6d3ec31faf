package wire

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// TestCheckBodyAcceptsValid encodes every msgpack format and checks that
// checkBody accepts each whole value and refuses every truncation of it.
func TestCheckBodyAcceptsValid(t *testing.T) {
	bigMap := make(map[string]int, 1<<16)
	for i := range 1 << 16 {
		bigMap[string(rune(i))+"k"] = i
	}
	values := []any{
		nil, true, false, 0, 1, -1, -32, -33, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, uint64(math.MaxUint64),
		int8(-100), int16(-30000), int32(-2e9), int64(math.MinInt64), float32(1.5), 2.5,
		"", strings.Repeat("s", 31), strings.Repeat("s", 32), strings.Repeat("s", 256), strings.Repeat("s", 1<<16),
		[]byte{}, []byte("b"), bytes.Repeat([]byte("b"), 256), bytes.Repeat([]byte("b"), 1<<16),
		[]int{}, make([]int, 15), make([]int, 16), make([]int, 1<<16), [][]any{{1, "x", nil}, {}},
		map[string]int{}, map[string]int{"a": 1}, bigMap,
		time.Unix(0, 0), time.Unix(1, 5), time.Unix(1<<40, 5),
		fullRequest(), fullResponse(),
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkBody(b); err != nil {
			t.Errorf("%T %.40v (%x…): %v", v, v, b[:min(len(b), 8)], err)
			continue
		}
		step := max(1, len(b)/64)
		for k := 0; k < len(b); k += step {
			if checkBody(b[:k]) == nil {
				t.Errorf("%T %.40v truncated to %d of %d bytes passes", v, v, k, len(b))
			}
		}
	}
	// Every extension format.
	for _, b := range [][]byte{
		{0xd4, 1, 0}, {0xd5, 1, 0, 0}, {0xd6, 1, 0, 0, 0, 0}, {0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		append([]byte{0xd8, 1}, make([]byte, 16)...), {0xc7, 2, 1, 0, 0}, {0xc8, 0, 2, 1, 0, 0},
		{0xc9, 0, 0, 0, 2, 1, 0, 0}, {0xc7, 0, 1},
	} {
		if err := checkBody(b); err != nil {
			t.Errorf("%x: %v", b, err)
		}
		if checkBody(b[:len(b)-1]) == nil {
			t.Errorf("%x truncated passes", b)
		}
	}
}

// TestHostileBodies sends tiny frames that announce huge contents or nest
// deeply. Before checkBody, the first crashed the process with an
// out-of-memory error, the second with a stack overflow (neither can be
// recovered), the third allocated 80 MB per 15-byte hello.
func TestHostileBodies(t *testing.T) {
	deep := append([]byte{0x81, 0xa2, 'z', 'z'}, bytes.Repeat([]byte{0x91}, 1<<20)...)
	deep = append(deep, 0xc0)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"kvs of 4G elements", []byte{0x81, 0xa2, 'k', 'v', 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"tenants of 268M elements", []byte{0x81, 0xa2, 't', 's', 0xdd, 0x0f, 0xff, 0xff, 0xff}},
		{"value of 4 GB", []byte{0x81, 0xa1, 'v', 0xc6, 0xff, 0xff, 0xff, 0xff}},
		{"map of 4G entries", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"labels of 4G entries", []byte{0x81, 0xa3, 'c', 'f', 'g', 0x81, 0xa3, 'l', 'b', 'l', 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"deep unknown field", deep},
		{"reserved byte", []byte{0x81, 0xa1, 'i', 0xc1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			var req Request
			errReq := DecodeRequest(tc.b, &req)
			var resp Response
			errResp := DecodeResponse(tc.b, &resp)
			runtime.ReadMemStats(&ms)
			if !errors.Is(errReq, errMalformed) || !errors.Is(errResp, errMalformed) {
				t.Errorf("DecodeRequest: %v; DecodeResponse: %v; want errMalformed", errReq, errResp)
			}
			if n := ms.TotalAlloc - before; n > 1<<20 {
				t.Errorf("decoding %d bytes allocated %d", len(tc.b), n)
			}
		})
	}
	// Nesting up to the limit is fine.
	ok := append(bytes.Repeat([]byte{0x91}, maxDepth), 0xc0)
	if err := checkBody(ok); err != nil {
		t.Errorf("%d levels: %v", maxDepth, err)
	}
	if err := checkBody(append([]byte{0x91}, ok...)); !errors.Is(err, errMalformed) {
		t.Errorf("%d levels: %v", maxDepth+1, err)
	}
}
