package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxDepth is the deepest nesting of arrays and maps a message may have. The
// deepest real message (a response's tenant list, a tenant's labels) nests
// four levels.
const maxDepth = 32

var errMalformed = errors.New("malformed msgpack")

// checkBody walks the msgpack value at the start of b without decoding it
// and refuses what would make the decoder misbehave: a container or string
// that announces more elements or bytes than b holds (the msgpack library
// allocates what a header announces, so a few bytes could claim gigabytes),
// and nesting deeper than maxDepth (the library skips unknown fields
// recursively, so a deep enough frame overflows the stack, which is fatal).
// It costs one pass over b and allocates nothing.
func checkBody(b []byte) error {
	var stack [maxDepth + 1]uint64 // values still to read at each level
	depth := 0
	stack[0] = 1
	off := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-off) {
			return fmt.Errorf("%w: %d bytes announced at offset %d, %d left", errMalformed, n, off, len(b)-off)
		}
		return nil
	}
	// size reads an n-byte big-endian length at off.
	size := func(n int) (uint64, error) {
		if err := need(uint64(n)); err != nil {
			return 0, err
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
		return v, nil
	}
	for {
		for stack[depth] == 0 {
			if depth == 0 {
				return nil
			}
			depth--
		}
		stack[depth]--
		if err := need(1); err != nil {
			return err
		}
		c := b[off]
		off++
		var skip uint64     // payload bytes to skip
		var children uint64 // values the container holds
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			// fixint, nil, bool
		case c >= 0x80 && c <= 0x8f:
			children = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			children = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9: // bin8, str8
			skip, err = size(1)
		case c == 0xc5 || c == 0xda: // bin16, str16
			skip, err = size(2)
		case c == 0xc6 || c == 0xdb: // bin32, str32
			skip, err = size(4)
		case c == 0xc7: // ext8: length, type, data
			skip, err = size(1)
			skip++
		case c == 0xc8:
			skip, err = size(2)
			skip++
		case c == 0xc9:
			skip, err = size(4)
			skip++
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c == 0xcc || c == 0xd0:
			skip = 1
		case c == 0xcd || c == 0xd1:
			skip = 2
		case c == 0xce || c == 0xd2:
			skip = 4
		case c == 0xcf || c == 0xd3:
			skip = 8
		case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16: type and data
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			children, err = size(2)
		case c == 0xdd:
			children, err = size(4)
		case c == 0xde:
			children, err = size(2)
			children *= 2
		case c == 0xdf:
			children, err = size(4)
			children *= 2
		default: // 0xc1 is never used
			return fmt.Errorf("%w: byte %#x at offset %d", errMalformed, c, off-1)
		}
		if err != nil {
			return err
		}
		if err := need(skip); err != nil {
			return err
		}
		off += int(skip)
		if children > 0 {
			// Every element takes at least one byte.
			if err := need(children); err != nil {
				return err
			}
			if depth == maxDepth {
				return fmt.Errorf("%w: nested deeper than %d", errMalformed, maxDepth)
			}
			depth++
			stack[depth] = children
		}
	}
}
