package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
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
	// conn and bodyTimeout, when set, bound how long the body of a frame
	// may take to arrive once its header has: a slow-loris sender cannot
	// hold a partly read frame open.
	conn        deadliner
	bodyTimeout time.Duration
}

type deadliner interface{ SetReadDeadline(time.Time) error }

// NewFrameReader wraps r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// NewConnFrameReader wraps a connection and gives every frame body at most
// bodyTimeout to arrive after its header. Waiting for a header is not
// bounded: an idle connection is fine.
func NewConnFrameReader(c net.Conn, bodyTimeout time.Duration) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(c, 64<<10), conn: c, bodyTimeout: bodyTimeout}
}

// SetBodyTimeout changes the body timeout of a reader made by
// NewConnFrameReader; zero turns it off.
func (fr *FrameReader) SetBodyTimeout(d time.Duration) { fr.bodyTimeout = d }

// growStep is how much body buffer is allocated ahead of the bytes that
// actually arrived: a header announcing a large frame costs nothing until
// the sender delivers.
const growStep = 64 << 10

// Read returns the next frame body, at most limit bytes. The returned slice is
// valid until the next call to Read. A clean end of stream before a header
// returns io.EOF; a stream cut inside a frame returns io.ErrUnexpectedEOF.
func (fr *FrameReader) Read(limit int) ([]byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	if fr.conn != nil && fr.bodyTimeout > 0 && n > 0 {
		_ = fr.conn.SetReadDeadline(time.Now().Add(fr.bodyTimeout))
		defer fr.conn.SetReadDeadline(time.Time{})
	}
	// Allocate as the bytes arrive, never ahead of them by more than
	// growStep (the buffer kept from earlier frames is reused as is).
	body := fr.buf[:0]
	for len(body) < n {
		want := min(n, len(body)+growStep)
		if cap(body) < want {
			nb := make([]byte, len(body), max(want, min(n, 2*cap(body))))
			copy(nb, body)
			body = nb
		}
		m, err := io.ReadFull(fr.r, body[len(body):want])
		body = body[:len(body)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			fr.buf = nil
			return nil, err
		}
	}
	// Do not keep a huge buffer alive after one large frame.
	if cap(body) > 1<<20 && n < 1<<20 {
		fr.buf = nil
	} else {
		fr.buf = body
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
