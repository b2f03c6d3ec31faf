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

// ErrIdle is returned by Read when no byte of a new frame arrived within
// the idle timeout. Nothing was consumed: Read may be called again.
var ErrIdle = errors.New("tenantkv: connection idle")

// FrameReader reads frames from a stream, reusing one buffer.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
	// conn and bodyTimeout, when set, bound how long the body of a frame
	// may take to arrive once its header has: a slow-loris sender cannot
	// hold a partly read frame open.
	conn        deadliner
	bodyTimeout time.Duration
	// admit, when set, is called with a frame's body size once its header
	// has arrived and before any of the body is read or allocated; an
	// error ends Read. The server charges the body to its memory budget
	// there, so that a budget spent holds the body back in TCP.
	admit func(n int) error
	// idleTimeout, when set, bounds the wait for the first byte of a
	// frame (Read returns ErrIdle).
	idleTimeout time.Duration
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

// SetAdmit sets the function Read calls with each body size before it
// reads the body (nil: none).
func (fr *FrameReader) SetAdmit(f func(n int) error) { fr.admit = f }

// SetIdleTimeout makes Read of a reader made by NewConnFrameReader return
// ErrIdle when no byte of the next frame arrives within d; zero turns it
// off. The header and body then share the body timeout.
func (fr *FrameReader) SetIdleTimeout(d time.Duration) { fr.idleTimeout = d }

// growStep is how much body buffer is allocated ahead of the bytes that
// actually arrived: a header announcing a large frame costs nothing until
// the sender delivers.
const growStep = 64 << 10

// Read returns the next frame body, at most limit bytes. The returned slice is
// valid until the next call to Read. A clean end of stream before a header
// returns io.EOF; a stream cut inside a frame returns io.ErrUnexpectedEOF.
func (fr *FrameReader) Read(limit int) ([]byte, error) {
	var hdr [HeaderLen]byte
	idle := fr.conn != nil && fr.idleTimeout > 0
	if idle && fr.r.Buffered() == 0 {
		_ = fr.conn.SetReadDeadline(time.Now().Add(fr.idleTimeout))
		if _, err := fr.r.Peek(1); err != nil {
			_ = fr.conn.SetReadDeadline(time.Time{})
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, ErrIdle
			}
			return nil, err
		}
		if fr.bodyTimeout > 0 {
			_ = fr.conn.SetReadDeadline(time.Now().Add(fr.bodyTimeout))
		} else {
			_ = fr.conn.SetReadDeadline(time.Time{})
		}
	}
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	if idle && n == 0 {
		_ = fr.conn.SetReadDeadline(time.Time{})
	}
	if fr.admit != nil {
		if err := fr.admit(n); err != nil {
			return nil, err
		}
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
	// Do not keep a large buffer alive after a large frame: an idle
	// connection would hold it for as long as it stays open.
	if cap(body) > 1<<20 {
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
