package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Log formats of serve --log-format.
const (
	logFormatText = "text"
	logFormatJSON = "json"
)

// newLogger returns serve's logger: one line per record on w, as logfmt
// (text) or one JSON object per line (json), at level and above, with
// every attribute at most once on a line.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case logFormatText:
		h = slog.NewTextHandler(w, opts)
	case logFormatJSON:
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", format)
	}
	return slog.New(&uniqueAttrs{inner: h, seen: builtinKeys}), nil
}

// uniqueAttrs is a slog.Handler that passes every record on with each key
// at most once per group: the node's loggers are made by layers that each
// add what they know (the server adds node=ID, the raft package adds it
// again for its own users; hashicorp/raft adds a node= of its own), and a
// JSON line with a key twice is one that most parsers read wrongly (they
// keep the last). An attribute whose key and value are already on the line
// is dropped; one whose key is there with another value is kept under the
// key with a suffix, key_2, key_3, ... so that nothing is lost.
//
// Keys are compared within the innermost group (WithGroup): a key in a
// group does not clash with the same key outside it.
type uniqueAttrs struct {
	inner slog.Handler
	// seen are the keys of the attributes added with WithAttrs since the
	// last WithGroup, with their values. It is never modified: WithAttrs
	// copies it. Outside any group it starts with slog's own keys (time,
	// level, msg, source), which an attribute may not take either.
	seen map[string]slog.Value
}

// builtinKeys are the keys the handlers write on every line themselves,
// with values no attribute equals.
var builtinKeys = map[string]slog.Value{
	slog.TimeKey: builtinValue, slog.LevelKey: builtinValue, slog.MessageKey: builtinValue, slog.SourceKey: builtinValue,
}

// builtinValue is a value of a type of its own, equal to no attribute's
// (sameValue).
var builtinValue = slog.AnyValue(builtinMark{})

type builtinMark struct{}

var _ slog.Handler = (*uniqueAttrs)(nil)

// Enabled reports whether the inner handler handles records at level.
func (h *uniqueAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// WithAttrs returns a handler that adds attrs, less those already there.
func (h *uniqueAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	seen := make(map[string]slog.Value, len(h.seen)+len(attrs))
	for k, v := range h.seen {
		seen[k] = v
	}
	kept := dedupAttrs(seen, attrs)
	return &uniqueAttrs{inner: h.inner.WithAttrs(kept), seen: seen}
}

// WithGroup returns a handler whose later keys are in group name.
func (h *uniqueAttrs) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &uniqueAttrs{inner: h.inner.WithGroup(name)}
}

// Handle passes r on, without the attributes whose key is already on the
// line with the same value, and with a suffix on those whose key is there
// with another one.
func (h *uniqueAttrs) Handle(ctx context.Context, r slog.Record) error {
	clash := false
	var keys map[string]bool
	r.Attrs(func(a slog.Attr) bool {
		if _, ok := h.seen[a.Key]; ok {
			clash = true
			return false
		}
		if keys == nil {
			keys = make(map[string]bool, r.NumAttrs())
		}
		if keys[a.Key] {
			clash = true
			return false
		}
		keys[a.Key] = true
		return true
	})
	if !clash {
		return h.inner.Handle(ctx, r) // the common case: no copy
	}
	seen := make(map[string]slog.Value, len(h.seen)+r.NumAttrs())
	for k, v := range h.seen {
		seen[k] = v
	}
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(dedupAttrs(seen, attrs)...)
	return h.inner.Handle(ctx, out)
}

// dedupAttrs returns attrs less those whose key and value are in seen,
// with a suffix on the key of those whose key is in seen with another
// value, and adds what it keeps to seen. Empty attributes, which handlers
// drop anyway, are dropped.
func dedupAttrs(seen map[string]slog.Value, attrs []slog.Attr) []slog.Attr {
	kept := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
			continue
		}
		a.Value = a.Value.Resolve()
		if v, ok := seen[a.Key]; ok {
			if sameValue(v, a.Value) {
				continue
			}
			for n := 2; ; n++ {
				k := a.Key + "_" + strconv.Itoa(n)
				if v, ok := seen[k]; !ok {
					a.Key = k
					break
				} else if sameValue(v, a.Value) {
					a.Key = ""
					break
				}
			}
			if a.Key == "" {
				continue
			}
		}
		seen[a.Key] = a.Value
		kept = append(kept, a)
	}
	return kept
}

// sameValue reports whether two values print the same. slog.Value.Equal
// panics on values of types that cannot be compared (slices, maps, which
// hashicorp/raft logs), so those, and groups, are compared as printed.
func sameValue(a, b slog.Value) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	if _, builtin := a.Any().(builtinMark); builtin {
		return false
	}
	switch a.Kind() {
	case slog.KindAny, slog.KindGroup, slog.KindLogValuer:
		return fmt.Sprint(a.Any()) == fmt.Sprint(b.Any())
	}
	return a.Equal(b)
}
