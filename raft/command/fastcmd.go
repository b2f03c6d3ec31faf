package command

import (
	"encoding/binary"
	"math"

	"github.com/tenantkv/tenantkv/internal/msgp"
	"github.com/tenantkv/tenantkv/keyspace"
)

// A hand-written codec for TenantWrite, the command of almost every log
// entry. Decoding a command through the msgpack library (a structural
// pre-check, then reflection) was a tenth of a follower's CPU under a write
// load, and encoding it much of a proposal's cost on the leader.
//
// The encoder writes exactly the bytes the library writes for the same
// value (a struct as a map in field order, empty omitempty fields left out,
// integers at their type's full width). The decoder accepts exactly that
// canonical form and nothing else: any other input, valid or not, goes to
// the library's decoder, which stays the definition of what an entry
// means. Where the fast decoder succeeds it must produce what the library
// would, or replicas of different builds could disagree; tests compare the
// two on random commands and the fuzzer on arbitrary bytes.

// appendTenantWrite appends the body of a TenantWrite entry.
func appendTenantWrite(dst []byte, c *TenantWrite) []byte {
	n := byte(3)
	if c.At != 0 {
		n = 4
	}
	dst = append(dst, 0x80|n)
	dst = msgp.AppendStr(dst, "id")
	dst = binary.BigEndian.AppendUint64(append(dst, 0xcf), uint64(c.TenantID))
	dst = msgp.AppendStr(dst, "name")
	dst = msgp.AppendStr(dst, c.TenantName)
	dst = msgp.AppendStr(dst, "ops")
	if c.Ops == nil {
		dst = append(dst, 0xc0)
	} else {
		dst = msgp.AppendArrayLen(dst, len(c.Ops))
		for i := range c.Ops {
			dst = appendOp(dst, &c.Ops[i])
		}
	}
	if c.At != 0 {
		dst = msgp.AppendStr(dst, "at")
		dst = binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(c.At))
	}
	return dst
}

func appendOp(dst []byte, op *Op) []byte {
	n := byte(1)
	for _, f := range [...][]byte{op.Key, op.Value, op.End} {
		if len(f) > 0 {
			n++
		}
	}
	dst = append(dst, 0x80|n, 0xa1, 'o', 0xcc, byte(op.Kind))
	if len(op.Key) > 0 {
		dst = msgp.AppendBin(append(dst, 0xa1, 'k'), op.Key)
	}
	if len(op.Value) > 0 {
		dst = msgp.AppendBin(append(dst, 0xa1, 'v'), op.Value)
	}
	if len(op.End) > 0 {
		dst = msgp.AppendBin(append(dst, 0xa1, 'e'), op.End)
	}
	return dst
}

// canonReader reads the canonical form; any surprise sets bad.
type canonReader struct {
	b   []byte
	bad bool
}

func (r *canonReader) byte1() byte {
	if r.bad || len(r.b) < 1 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *canonReader) take(n uint64) []byte {
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *canonReader) be(n int) uint64 {
	b := r.take(uint64(n))
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// key consumes the map key k, written as a fixstr.
func (r *canonReader) key(k string) {
	if r.byte1() != 0xa0|byte(len(k)) || string(r.take(uint64(len(k)))) != k {
		r.bad = true
	}
}

// str reads a string in the smallest form the encoder uses for its length.
func (r *canonReader) str() string {
	var n uint64
	switch c := r.byte1(); {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n = r.be(1)
		r.bad = r.bad || n < 32
	case c == 0xda:
		n = r.be(2)
		r.bad = r.bad || n <= math.MaxUint8
	case c == 0xdb:
		n = r.be(4)
		r.bad = r.bad || n <= math.MaxUint16
	default:
		r.bad = true
	}
	return string(r.take(n))
}

// bin reads a non-empty byte string in the smallest form, as a copy.
func (r *canonReader) bin() []byte {
	var n uint64
	switch r.byte1() {
	case 0xc4:
		n = r.be(1)
	case 0xc5:
		n = r.be(2)
		r.bad = r.bad || n <= math.MaxUint8
	case 0xc6:
		n = r.be(4)
		r.bad = r.bad || n <= math.MaxUint16
	default:
		r.bad = true
	}
	if n == 0 {
		r.bad = true
	}
	b := r.take(n)
	if r.bad {
		return nil
	}
	return append([]byte(nil), b...)
}

// decodeTenantWriteFast decodes the canonical body of a TenantWrite entry;
// ok is false for anything else, which the caller hands to the library.
func decodeTenantWriteFast(b []byte) (_ *TenantWrite, ok bool) {
	r := canonReader{b: b}
	n := r.byte1()
	if n != 0x83 && n != 0x84 {
		return nil, false
	}
	c := &TenantWrite{}
	r.key("id")
	if r.byte1() != 0xcf {
		return nil, false
	}
	c.TenantID = keyspace.TenantID(r.be(8))
	r.key("name")
	c.TenantName = r.str()
	r.key("ops")
	var count uint64
	switch h := r.byte1(); {
	case h == 0xc0:
		count = math.MaxUint64 // nil
	case h&0xf0 == 0x90:
		count = uint64(h & 0x0f)
	case h == 0xdc:
		count = r.be(2)
		r.bad = r.bad || count < 16
	case h == 0xdd:
		count = r.be(4)
		r.bad = r.bad || count <= math.MaxUint16
	default:
		return nil, false
	}
	if count != math.MaxUint64 {
		if r.bad || count > uint64(len(r.b))/5 { // an op takes at least 5 bytes
			return nil, false
		}
		c.Ops = make([]Op, count)
		for i := range c.Ops {
			op := &c.Ops[i]
			fields := r.byte1()
			if fields < 0x81 || fields > 0x84 {
				return nil, false
			}
			r.key("o")
			if r.byte1() != 0xcc {
				return nil, false
			}
			op.Kind = OpKind(r.byte1())
			left := int(fields&0x0f) - 1
			for _, f := range [...]struct {
				name string
				dst  *[]byte
			}{{"k", &op.Key}, {"v", &op.Value}, {"e", &op.End}} {
				if left == 0 || r.bad || len(r.b) < 2 || r.b[0] != 0xa1 || r.b[1] != f.name[0] {
					continue
				}
				r.key(f.name)
				*f.dst = r.bin()
				left--
			}
			if left != 0 {
				return nil, false
			}
		}
	}
	if n == 0x84 {
		r.key("at")
		if r.byte1() != 0xd3 {
			return nil, false
		}
		c.At = int64(r.be(8))
		if c.At == 0 {
			return nil, false // the encoder omits a zero At
		}
	}
	if r.bad || len(r.b) != 0 {
		return nil, false
	}
	return c, true
}
