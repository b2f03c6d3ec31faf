package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	// HeaderLen is the size of a frame header.
	HeaderLen = 4
	// DefaultMaxFrame is the largest body accepted by default: room for a
	// 10 MB transaction and its encoding overhead.
	DefaultMaxFrame = 16 << 20
	// MaxHelloFrame is the largest hello accepted before authentication.
	MaxHelloFrame = 64 << 10
)

// ErrFrameTooLarge is returned when a frame header announces a body larger
// than the reader's maximum. The connection cannot be resynchronised after it.
var ErrFrameTooLarge = errors.New("tenantkv: frame too large")

// FrameReader reads frames from a stream, reusing one buffer.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewFrameReader wraps r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Read returns the next frame body, at most max bytes. The returned slice is
// valid until the next call to Read. A clean end of stream before a header
// returns io.EOF; a stream cut inside a frame returns io.ErrUnexpectedEOF.
func (fr *FrameReader) Read(max int) ([]byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	body := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// Do not keep a huge buffer alive after one large frame.
	if cap(fr.buf) > 1<<20 && n < 1<<20 {
		fr.buf = nil
	}
	return body, nil
}

// Buffered reports whether bytes are already buffered (another frame may be
// ready without blocking).
func (fr *FrameReader) Buffered() int { return fr.r.Buffered() }

// AppendFrameHeader reserves a header at the end of dst; FinishFrame fills it
// in once the body has been appended after it.
func AppendFrameHeader(dst []byte) []byte { return append(dst, 0, 0, 0, 0) }

// FinishFrame writes the body length into the header at dst[start:].
func FinishFrame(dst []byte, start int) error {
	n := len(dst) - start - HeaderLen
	if n < 0 || uint64(n) > 0xFFFF_FFFF {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return nil
}
