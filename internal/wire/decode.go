package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"reflect"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// Decoding requests in bounded memory.
//
// The msgpack library decodes a slice of structs by reflection: it makes
// the slice at the announced length, appends it to an empty one (a second
// copy) and allocates every byte field on its own. A 16 MiB frame of
// four-byte mutations ({"k": 3}) cost 640 MiB that way, 40 bytes per frame
// byte. Batches ([]Mutation) are decoded here instead: the slice is made
// once, at a length bounded by the bytes left in the frame divided by the
// smallest encoding a mutation can have, and the mutations' keys, values
// and ends are sub-slices of one copy of the frame. A frame then costs at
// most its own size plus sizeof(Mutation) per four bytes (21 bytes per
// frame byte for the worst frame, 2 for ordinary ones), and DecodeCost
// tells the server that figure before it decodes, so that it can charge
// the cost to its memory budget first.

// minMutationBytes is the smallest encoding of a mutation that can be
// valid: a map of one entry, its kind ({"k": 1} is four bytes).
const minMutationBytes = 4

var (
	sizeofMutation = int(unsafe.Sizeof(Mutation{}))
	sizeofKeyRange = int(unsafe.Sizeof(KeyRange{}))
)

func init() {
	msgpack.Register([]Mutation(nil), nil, decodeMutations)
}

// frameSource is the reader DecodeRequest gives the msgpack decoder. It
// implements io.ByteScanner, so the decoder reads b directly without a
// buffer of its own, and the batch decoder can parse mutations straight
// from b at the decoder's position.
type frameSource struct {
	b   []byte
	off int
	// shared is a copy of b, made on first need, that decoded byte fields
	// alias: one allocation for all the mutations of a batch.
	shared []byte
}

func (r *frameSource) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *frameSource) ReadByte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	r.off++
	return r.b[r.off-1], nil
}

func (r *frameSource) UnreadByte() error {
	if r.off == 0 {
		return io.ErrNoProgress
	}
	r.off--
	return nil
}

// bytesAt returns a copy of b[start:end] that aliases the shared copy of
// the frame; its capacity ends at end, so appending to it never writes
// over the next field.
func (r *frameSource) bytesAt(start, end int) []byte {
	if r.shared == nil {
		r.shared = bytes.Clone(r.b)
	}
	return r.shared[start:end:end]
}

// unmarshalRequest is unmarshal for requests, through a frameSource so
// that batches decode in bounded memory.
func unmarshalRequest(b []byte, req *Request) (err error) {
	if err := checkBody(b); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("msgpack: %v", r)
		}
	}()
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(&frameSource{b: b})
	return dec.Decode(req)
}

// decodeMutations decodes a []Mutation. Through a frameSource it parses
// the mutations itself; from any other reader it lets the library decode
// each element.
func decodeMutations(d *msgpack.Decoder, v reflect.Value) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n == -1 {
		v.Set(reflect.Zero(v.Type()))
		return nil
	}
	r, ok := d.Buffered().(*frameSource)
	if !ok {
		muts := make([]Mutation, 0, min(n, 1024))
		for range n {
			var m Mutation
			if err := d.Decode(&m); err != nil {
				return err
			}
			muts = append(muts, m)
		}
		v.Set(reflect.ValueOf(muts))
		return nil
	}
	if n > (len(r.b)-r.off)/minMutationBytes {
		return fmt.Errorf("%w: %d mutations announced in %d bytes", errMalformed, n, len(r.b)-r.off)
	}
	muts := make([]Mutation, n)
	for i := range muts {
		if err := r.mutation(&muts[i]); err != nil {
			return fmt.Errorf("mutation %d: %w", i, err)
		}
	}
	v.Set(reflect.ValueOf(muts))
	return nil
}

// mutation parses one mutation at r.off: a map of "k" (an unsigned
// integer), "key", "v" and "e" (binary or string, or nil); other fields
// are skipped, as the library skips unknown fields. checkBody has already
// checked that every length fits in the frame.
func (r *frameSource) mutation(m *Mutation) error {
	if r.off >= len(r.b) {
		return io.ErrUnexpectedEOF
	}
	c := r.b[r.off]
	var n int
	switch {
	case c >= 0x80 && c <= 0x8f:
		n = int(c & 0x0f)
		r.off++
	case c == 0xde:
		n = int(binary.BigEndian.Uint16(r.b[r.off+1:]))
		r.off += 3
	case c == 0xdf:
		n = int(binary.BigEndian.Uint32(r.b[r.off+1:]))
		r.off += 5
	default:
		return fmt.Errorf("%w: a mutation is not a map (byte %#x)", errMalformed, c)
	}
	for range n {
		start, end, ok := r.strAt()
		if !ok {
			return fmt.Errorf("%w: a mutation's field name is not a string", errMalformed)
		}
		var err error
		switch string(r.b[start:end]) {
		case "k":
			m.Kind, err = r.uint8()
		case "key":
			m.Key, err = r.bin()
		case "v":
			m.Value, err = r.bin()
		case "e":
			m.End, err = r.bin()
		default:
			r.off, ok = skipValue(r.b, r.off)
			if !ok {
				err = errMalformed
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// strAt reads a string header and returns the string's bounds.
func (r *frameSource) strAt() (start, end int, ok bool) {
	c := r.b[r.off]
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, r.off = int(c&0x1f), r.off+1
	case c == 0xd9:
		n, r.off = int(r.b[r.off+1]), r.off+2
	case c == 0xda:
		n, r.off = int(binary.BigEndian.Uint16(r.b[r.off+1:])), r.off+3
	case c == 0xdb:
		n, r.off = int(binary.BigEndian.Uint32(r.b[r.off+1:])), r.off+5
	default:
		return 0, 0, false
	}
	start = r.off
	r.off += n
	return start, r.off, true
}

// bin reads a binary or string field; nil decodes to nil and an empty one
// to an empty, non-nil slice, as the library does.
func (r *frameSource) bin() ([]byte, error) {
	c := r.b[r.off]
	if c == 0xc0 {
		r.off++
		return nil, nil
	}
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, r.off = int(c&0x1f), r.off+1
	case c == 0xc4 || c == 0xd9:
		n, r.off = int(r.b[r.off+1]), r.off+2
	case c == 0xc5 || c == 0xda:
		n, r.off = int(binary.BigEndian.Uint16(r.b[r.off+1:])), r.off+3
	case c == 0xc6 || c == 0xdb:
		n, r.off = int(binary.BigEndian.Uint32(r.b[r.off+1:])), r.off+5
	default:
		return nil, fmt.Errorf("msgpack: invalid code=%x decoding bytes length", c)
	}
	start := r.off
	r.off += n
	return r.bytesAt(start, r.off), nil
}

// uint8 reads an integer into a uint8, truncating as the library does.
func (r *frameSource) uint8() (uint8, error) {
	c := r.b[r.off]
	r.off++
	var v uint64
	switch {
	case c <= 0x7f || c >= 0xe0:
		v = uint64(int8(c))
	case c == 0xc0:
		v = 0
	case c == 0xcc || c == 0xd0:
		v = uint64(r.b[r.off])
		r.off++
	case c == 0xcd || c == 0xd1:
		v = uint64(binary.BigEndian.Uint16(r.b[r.off:]))
		r.off += 2
	case c == 0xce || c == 0xd2:
		v = uint64(binary.BigEndian.Uint32(r.b[r.off:]))
		r.off += 4
	case c == 0xcf || c == 0xd3:
		v = binary.BigEndian.Uint64(r.b[r.off:])
		r.off += 8
	default:
		return 0, fmt.Errorf("msgpack: invalid code=%x decoding uint64", c)
	}
	return uint8(v), nil
}

// skipValue returns the offset after the msgpack value at off, or false if
// b is malformed there. It is iterative: nesting costs no stack.
func skipValue(b []byte, off int) (int, bool) {
	pending := uint64(1)
	for pending > 0 {
		if off >= len(b) {
			return off, false
		}
		pending--
		c := b[off]
		off++
		var skip, children uint64
		size := func(n int) uint64 {
			if off+n > len(b) {
				return 1 << 40
			}
			var v uint64
			switch n {
			case 1:
				v = uint64(b[off])
			case 2:
				v = uint64(binary.BigEndian.Uint16(b[off:]))
			case 4:
				v = uint64(binary.BigEndian.Uint32(b[off:]))
			}
			off += n
			return v
		}
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			children = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			children = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			skip = size(1)
		case c == 0xc5 || c == 0xda:
			skip = size(2)
		case c == 0xc6 || c == 0xdb:
			skip = size(4)
		case c == 0xc7:
			skip = size(1) + 1
		case c == 0xc8:
			skip = size(2) + 1
		case c == 0xc9:
			skip = size(4) + 1
		case c == 0xca, c == 0xce, c == 0xd2:
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3:
			skip = 8
		case c == 0xcc || c == 0xd0:
			skip = 1
		case c == 0xcd || c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			children = size(2)
		case c == 0xdd:
			children = size(4)
		case c == 0xde:
			children = 2 * size(2)
		case c == 0xdf:
			children = 2 * size(4)
		default:
			return off, false
		}
		if skip > uint64(len(b)-off) || children > uint64(len(b)-off) {
			return off, false
		}
		off += int(skip)
		pending += children
	}
	return off, true
}

// DecodeCost returns about how many bytes DecodeRequest allocates to decode
// body, without decoding it, and the request's ID and operation: the byte fields (at most
// the body's size) and the mutations and read ranges it holds. It costs
// one pass over the top level of the message. A body that is not a
// well-formed map costs its size (decoding it fails early), with ID and
// operation 0.
func DecodeCost(body []byte) (cost int, id uint64, op Op) {
	cost = len(body)
	if len(body) == 0 {
		return 0, 0, 0
	}
	off := 0
	var n int
	switch c := body[0]; {
	case c >= 0x80 && c <= 0x8f:
		n, off = int(c&0x0f), 1
	case c == 0xde && len(body) >= 3:
		n, off = int(binary.BigEndian.Uint16(body[1:])), 3
	case c == 0xdf && len(body) >= 5:
		n, off = int(binary.BigEndian.Uint32(body[1:])), 5
	default:
		return cost, 0, 0
	}
	r := &frameSource{b: body}
	for range n {
		r.off = off
		if r.off >= len(body) {
			return cost, id, op
		}
		start, end, ok := r.strAt()
		if !ok || r.off >= len(body) {
			return cost, id, op
		}
		switch key := string(body[start:end]); key {
		case "i":
			if c := body[r.off]; c <= 0x7f || (c >= 0xcc && c <= 0xcf) {
				v, err := r.uint64At()
				if err == nil {
					id = v
				}
			}
		case "o":
			if c := body[r.off]; c <= 0x7f || c == 0xcc {
				if v, err := r.uint64At(); err == nil {
					op = Op(v)
				}
			}
		case "mu", "rr":
			var count uint64
			switch c := body[r.off]; {
			case c >= 0x90 && c <= 0x9f:
				count = uint64(c & 0x0f)
			case c == 0xdc && r.off+3 <= len(body):
				count = uint64(binary.BigEndian.Uint16(body[r.off+1:]))
			case c == 0xdd && r.off+5 <= len(body):
				count = uint64(binary.BigEndian.Uint32(body[r.off+1:]))
			}
			count = min(count, uint64(len(body)))
			if key == "mu" {
				cost += int(count) * sizeofMutation
			} else {
				cost += int(count) * sizeofKeyRange
			}
		}
		if off, ok = skipValue(body, r.off); !ok {
			return cost, id, op
		}
	}
	return cost, id, op
}

// uint64At reads an unsigned integer at r.off, if the bytes are there.
func (r *frameSource) uint64At() (uint64, error) {
	c := r.b[r.off]
	w := map[byte]int{0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[c]
	if c <= 0x7f {
		return uint64(c), nil
	}
	if r.off+1+w > len(r.b) {
		return 0, io.ErrUnexpectedEOF
	}
	var v uint64
	for _, x := range r.b[r.off+1 : r.off+1+w] {
		v = v<<8 | uint64(x)
	}
	return v, nil
}
