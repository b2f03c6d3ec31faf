package wire

import (
	"encoding/binary"
	"math"

	"github.com/tenantkv/tenantkv/internal/msgp"
)

// A hand-written encoder for the messages of the data path. The msgpack
// library encodes a struct by reflection and checks every omitempty field
// for emptiness the same way: a third of the CPU a node spent per point
// read in BenchmarkRequestOverhead went there. Requests and responses that
// carry only scalar fields, bytes and key-value pairs (every data
// operation, hello and most errors) are encoded here instead; anything else
// (tenant configuration, batches, transactions, administration answers)
// still goes through the library.
//
// The output is byte for byte what the library writes for the same value
// with the encoder appendMsg uses (structs as maps in field order, empty
// omitempty fields left out, integers at their type's full width, which is
// the library's default), so a peer cannot tell the two apart; a test
// compares them on random messages.

// fastRequest reports whether req has only fields the fast encoder writes.
func fastRequest(req *Request) bool {
	return req.Muts == nil && req.Config == nil && req.Reads == nil
}

// fastResponse reports whether resp has only fields the fast encoder writes.
// (MaxFormat answers only OpFormat, which is not on the data path.)
func fastResponse(resp *Response) bool {
	return resp.Tenant == nil && resp.Tenants == nil && resp.Tokens == nil &&
		resp.Cluster == nil && resp.Events == nil && resp.MaxFormat == 0 && resp.Snapshot == nil &&
		resp.Audit == nil && resp.Verdict == nil
}

// mapping counts a map's entries while they are appended and patches the
// header in at the end. The header is reserved at its widest (map16, as a
// struct has fewer than 65,536 fields) and moved down to a fixmap when the
// count allows, which is what the library writes.
type mapping struct {
	start int // offset of the reserved header
	n     int
}

func beginMap(dst []byte) ([]byte, mapping) {
	return append(dst, 0, 0, 0), mapping{start: len(dst)}
}

func (m *mapping) end(dst []byte) []byte {
	if m.n < 16 {
		dst[m.start] = 0x80 | byte(m.n)
		return append(dst[:m.start+1], dst[m.start+3:]...)
	}
	dst[m.start] = 0xde
	binary.BigEndian.PutUint16(dst[m.start+1:], uint16(m.n))
	return dst
}

func (m *mapping) key(dst []byte, k string) []byte {
	m.n++
	return msgp.AppendStr(dst, k)
}

func appendU64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

func appendI64(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}

func appendU8(dst []byte, v uint8) []byte { return append(dst, 0xcc, v) }

// appendInt writes an int in the fewest bytes, as the library does for Go's
// int (but not for int64, which it writes at full width).
func appendInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0 && n <= math.MaxInt8:
		return append(dst, byte(n))
	case n >= 0 && n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n >= 0 && n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(n))
	case n >= 0 && n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(n))
	case n >= 0:
		return binary.BigEndian.AppendUint64(append(dst, 0xcf), uint64(n))
	case n >= -32:
		return append(dst, byte(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
}

func appendTrue(dst []byte) []byte { return append(dst, 0xc3) }

// The field helpers below append one omitempty field when it is not empty.

func (m *mapping) str(dst []byte, k, v string) []byte {
	if v == "" {
		return dst
	}
	return msgp.AppendStr(m.key(dst, k), v)
}

func (m *mapping) bin(dst []byte, k string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	return msgp.AppendBin(m.key(dst, k), v)
}

func (m *mapping) u64(dst []byte, k string, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return appendU64(m.key(dst, k), v)
}

func (m *mapping) i64(dst []byte, k string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return appendI64(m.key(dst, k), v)
}

func (m *mapping) int(dst []byte, k string, v int) []byte {
	if v == 0 {
		return dst
	}
	return appendInt(m.key(dst, k), int64(v))
}

func (m *mapping) u8(dst []byte, k string, v uint8) []byte {
	if v == 0 {
		return dst
	}
	return appendU8(m.key(dst, k), v)
}

func (m *mapping) flag(dst []byte, k string, v bool) []byte {
	if !v {
		return dst
	}
	return appendTrue(m.key(dst, k))
}

// appendRequestFast encodes req, which must satisfy fastRequest.
func appendRequestFast(dst []byte, req *Request) []byte {
	dst, m := beginMap(dst)
	dst = appendU64(m.key(dst, "i"), req.ID)
	dst = appendU8(m.key(dst, "o"), uint8(req.Op))
	dst = m.str(dst, "t", req.Tenant)
	dst = m.bin(dst, "k", req.Key)
	dst = m.bin(dst, "v", req.Value)
	dst = m.bin(dst, "e", req.End)
	dst = m.int(dst, "l", req.Limit)
	dst = m.flag(dst, "r", req.Reverse)
	dst = m.flag(dst, "s", req.Stale)
	dst = m.str(dst, "cur", req.Cursor)
	dst = m.int(dst, "ver", req.Version)
	dst = m.str(dst, "tok", req.Token)
	dst = m.str(dst, "n", req.Name)
	dst = m.str(dst, "nn", req.NewName)
	dst = m.str(dst, "st", req.State)
	dst = m.str(dst, "aft", req.After)
	dst = m.flag(dst, "ro", req.ReadOnly)
	dst = m.i64(dst, "ttl", int64(req.TTL))
	dst = m.str(dst, "a", req.Addr)
	dst = m.str(dst, "a2", req.Addr2)
	dst = m.str(dst, "a3", req.Addr3)
	dst = m.u64(dst, "rv", req.ReadVersion)
	dst = m.u64(dst, "ti", req.TenantID)
	dst = m.bin(dst, "tx", req.TxnID)
	dst = m.bin(dst, "x", req.Expect)
	dst = m.u8(dst, "fl", req.Flags)
	dst = m.i64(dst, "wt", int64(req.Wait))
	return m.end(dst)
}

// appendResponseFast encodes resp, which must satisfy fastResponse.
func appendResponseFast(dst []byte, resp *Response) []byte {
	dst, m := beginMap(dst)
	dst = appendU64(m.key(dst, "i"), resp.ID)
	if resp.Code != 0 {
		dst = binary.BigEndian.AppendUint16(append(m.key(dst, "c"), 0xcd), uint16(resp.Code))
	}
	dst = m.str(dst, "m", resp.Msg)
	dst = m.bin(dst, "v", resp.Value)
	if len(resp.KVs) > 0 {
		dst = msgp.AppendArrayLen(m.key(dst, "kv"), len(resp.KVs))
		for i := range resp.KVs {
			dst = appendKV(dst, &resp.KVs[i])
		}
	}
	dst = m.flag(dst, "mo", resp.More)
	dst = m.str(dst, "ld", resp.Leader)
	dst = m.i64(dst, "ra", int64(resp.RetryAfter))
	dst = m.int(dst, "ver", resp.Version)
	dst = m.str(dst, "nid", resp.NodeID)
	dst = m.flag(dst, "op", resp.Operator)
	dst = m.i64(dst, "it", int64(resp.IdleTimeout))
	dst = m.str(dst, "tok", resp.Token)
	dst = m.str(dst, "tid", resp.TokenID)
	dst = m.str(dst, "nx", resp.Next)
	dst = m.u64(dst, "dv", resp.DataVersion)
	dst = m.u64(dst, "ti", resp.TenantID)
	dst = m.flag(dst, "sw", resp.Swapped)
	dst = m.u64(dst, "rl", resp.RateLimit)
	dst = m.u64(dst, "rb", resp.RateBurst)
	return m.end(dst)
}

func appendKV(dst []byte, kv *KV) []byte {
	dst, m := beginMap(dst)
	dst = msgp.AppendBin(m.key(dst, "k"), kv.Key)
	dst = msgp.AppendBin(m.key(dst, "v"), kv.Value)
	dst = m.u64(dst, "dv", kv.Version)
	return m.end(dst)
}
