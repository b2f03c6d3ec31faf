package testcluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// permanentError stops Poll at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that Poll returns it at once instead of retrying.
func Permanent(err error) error { return &permanentError{err} }

// Poll calls f every PollInterval until it returns nil, an error made by
// Permanent, or ctx ends; it returns f's last error.
func Poll(ctx context.Context, f func() error) error {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		var pe *permanentError
		if errors.As(err, &pe) {
			return pe.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// RetryAddrInUse calls start until it succeeds or fails otherwise than
// with an address in use: a restarted node's ports may still be held by a
// connection of its previous life.
func RetryAddrInUse(ctx context.Context, start func() error) error {
	return Poll(ctx, func() error {
		err := start()
		if err != nil && !IsAddrInUse(err) {
			return Permanent(err)
		}
		return err
	})
}

// Pause waits d or until ctx ends. It paces fault injection; it never
// stands in for waiting on a condition.
func Pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
