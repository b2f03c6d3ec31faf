package raft

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter sends hashicorp/raft's hclog output to a *slog.Logger. Trace
// maps below slog's Debug; levels are decided by the slog handler, so
// SetLevel is ignored.
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// slogLevelTrace is where hclog's Trace lands: below slog.LevelDebug.
const slogLevelTrace = slog.LevelDebug - 4

func newHCLogAdapter(l *slog.Logger, name string) *hclogAdapter {
	return &hclogAdapter{l: l.With("component", name), name: name}
}

func toSlogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slogLevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// hclogArgs turns hclog key/value pairs into slog attributes, rendering hclog.Fmt
// values.
func hclogArgs(kv []any) []any {
	out := make([]any, 0, len(kv))
	for i, v := range kv {
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				v = fmt.Sprintf(format, f[1:]...)
			}
		}
		if i%2 == 0 {
			if _, ok := v.(string); !ok {
				v = fmt.Sprint(v)
			}
		}
		out = append(out, v)
	}
	if len(out)%2 == 1 {
		out = append([]any{"EXTRA_VALUE_AT_START"}, out...)
	}
	return out
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, kv ...any) {
	if level == hclog.Off {
		return
	}
	ctx := context.Background()
	lvl := toSlogLevel(level)
	if !h.l.Enabled(ctx, lvl) {
		return
	}
	h.l.Log(ctx, lvl, msg, hclogArgs(kv)...)
}

func (h *hclogAdapter) Trace(msg string, kv ...any) { h.Log(hclog.Trace, msg, kv...) }
func (h *hclogAdapter) Debug(msg string, kv ...any) { h.Log(hclog.Debug, msg, kv...) }
func (h *hclogAdapter) Info(msg string, kv ...any)  { h.Log(hclog.Info, msg, kv...) }
func (h *hclogAdapter) Warn(msg string, kv ...any)  { h.Log(hclog.Warn, msg, kv...) }
func (h *hclogAdapter) Error(msg string, kv ...any) { h.Log(hclog.Error, msg, kv...) }

func (h *hclogAdapter) enabled(l slog.Level) bool { return h.l.Enabled(context.Background(), l) }

func (h *hclogAdapter) IsTrace() bool { return h.enabled(slogLevelTrace) }
func (h *hclogAdapter) IsDebug() bool { return h.enabled(slog.LevelDebug) }
func (h *hclogAdapter) IsInfo() bool  { return h.enabled(slog.LevelInfo) }
func (h *hclogAdapter) IsWarn() bool  { return h.enabled(slog.LevelWarn) }
func (h *hclogAdapter) IsError() bool { return h.enabled(slog.LevelError) }

func (h *hclogAdapter) ImpliedArgs() []any { return h.implied }

func (h *hclogAdapter) With(kv ...any) hclog.Logger {
	return &hclogAdapter{l: h.l.With(hclogArgs(kv)...), name: h.name, implied: append(append([]any(nil), h.implied...), kv...)}
}

func (h *hclogAdapter) Name() string { return h.name }

func (h *hclogAdapter) Named(name string) hclog.Logger {
	full := name
	if h.name != "" {
		full = h.name + "." + name
	}
	return &hclogAdapter{l: h.l.With("subsystem", full), name: full, implied: h.implied}
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{l: h.l.With("subsystem", name), name: name, implied: h.implied}
}

func (h *hclogAdapter) SetLevel(hclog.Level) {}

func (h *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case h.IsTrace():
		return hclog.Trace
	case h.IsDebug():
		return hclog.Debug
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	case h.IsError():
		return hclog.Error
	}
	return hclog.Off
}

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &hclogWriter{h: h, level: level}
}

// hclogWriter logs each Write as one line, for libraries that want an
// io.Writer or a *log.Logger.
type hclogWriter struct {
	h     *hclogAdapter
	level hclog.Level
}

func (w *hclogWriter) Write(p []byte) (int, error) {
	w.h.Log(w.level, string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
