package client

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// Limits of keys and values, as enforced by every server. The client checks
// them before sending so that an oversized request fails without a round trip.
const (
	// MaxKeySize is the largest key accepted, in bytes.
	MaxKeySize = 10_000
	// MaxValueSize is the largest value accepted, in bytes.
	MaxValueSize = 100_000
)

// DefaultDialTimeout bounds dialling a node and its hello when
// Options.DialTimeout is zero.
const DefaultDialTimeout = 5 * time.Second

// Options configure a DB. The zero value and a nil *Options mean defaults.
// Options are read once by Open; changing them afterwards has no effect.
type Options struct {
	// Token authenticates every connection: a tenant token reaches one
	// tenant, an operator token can also manage tenants and the cluster.
	Token string
	// TLS, when set, makes every connection use TLS with this configuration.
	// An empty ServerName is taken from the address being dialled.
	TLS *tls.Config
	// DialTimeout bounds dialling one node, the TLS handshake and the hello.
	// Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// Logger receives connection events (dials, redirects, broken
	// connections) at debug and warn levels. Nil discards them.
	Logger *slog.Logger
	// MaxFrame is the largest frame the client sends or accepts, in bytes.
	// Zero means 16 MiB, the server's default.
	MaxFrame int
}

// Validate reports whether the options are usable. A nil *Options is valid.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if o.DialTimeout < 0 {
		return fmt.Errorf("%w: negative DialTimeout %v", ErrInvalidArgument, o.DialTimeout)
	}
	if o.MaxFrame < 0 {
		return fmt.Errorf("%w: negative MaxFrame %d", ErrInvalidArgument, o.MaxFrame)
	}
	if o.MaxFrame > 0 && o.MaxFrame < 1<<10 {
		return fmt.Errorf("%w: MaxFrame %d is below 1 KiB", ErrInvalidArgument, o.MaxFrame)
	}
	return nil
}

// withDefaults returns a copy of o with every zero field set to its default.
func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.DialTimeout == 0 {
		out.DialTimeout = DefaultDialTimeout
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.MaxFrame == 0 {
		out.MaxFrame = wire.DefaultMaxFrame
	}
	if out.TLS != nil {
		out.TLS = out.TLS.Clone()
	}
	return out
}
