package raft

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
)

// hclogAdapter sends hashicorp/raft's hclog output to a *slog.Logger. Trace
// maps below slog's Debug; levels are decided by the slog handler, so
// SetLevel is ignored. The messages raft repeats while a peer is down are
// rate-limited (noiseLimiter); the loggers derived with With and Named
// share the limit.
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	implied []any
	noise   *noiseLimiter
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// slogLevelTrace is where hclog's Trace lands: below slog.LevelDebug.
const slogLevelTrace = slog.LevelDebug - 4

func newHCLogAdapter(l *slog.Logger, name string) *hclogAdapter {
	return &hclogAdapter{l: l.With("component", name), name: name, noise: newNoiseLimiter(noiseInterval)}
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

// ownKeys are the attribute keys that every line of a node has already:
// slog's own (time, level, msg, source), and those tenantkv's loggers set,
// node=ID (the server's and this package's), component= and subsystem=
// (this adapter's). hashicorp/raft uses some for values of its own
// (node="Node at ADDR [Candidate]", time= for how long a peer has not
// answered); such a key is logged as raft_KEY, so that no key is on a line
// twice.
var ownKeys = map[string]bool{
	slog.TimeKey: true, slog.LevelKey: true, slog.MessageKey: true, slog.SourceKey: true,
	"node": true, "component": true, "subsystem": true,
}

// hclogArgs turns hclog key/value pairs into slog attributes, rendering hclog.Fmt
// values and values of other types (hclogValue), and renaming keys of
// ownKeys.
func hclogArgs(kv []any) []any {
	out := make([]any, 0, len(kv))
	for i, v := range kv {
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				v = fmt.Sprintf(format, f[1:]...)
			}
		}
		if i%2 == 0 {
			k, ok := v.(string)
			if !ok {
				k = fmt.Sprint(v)
			}
			if ownKeys[k] {
				k = "raft_" + k
			}
			v = k
		} else {
			v = hclogValue(v)
		}
		out = append(out, v)
	}
	if len(out)%2 == 1 {
		out = append([]any{"EXTRA_VALUE_AT_START"}, out...)
	}
	return out
}

// hclogValue returns v as slog should log it: as it is if slog prints it
// well in both text and JSON, else as fmt prints it, as hclog itself does
// (a hraft.Server is "{Voter n2 127.0.0.1:7411}", not a JSON object with a
// numeric suffrage; a type JSON cannot encode still logs).
func hclogValue(v any) any {
	switch v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		float32, float64, time.Duration, time.Time, error, slog.Value:
		return v
	}
	return fmt.Sprint(v)
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
	args := hclogArgs(kv)
	if peerKey, noisy := peerNoise[msg]; noisy && h.noise != nil {
		show, suppressed := h.noise.allow(h.noise.peer(kv, peerKey), h.noise.now())
		if !show {
			return
		}
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
	}
	h.l.Log(ctx, lvl, msg, args...)
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
	return &hclogAdapter{l: h.l.With(hclogArgs(kv)...), name: h.name, implied: append(append([]any(nil), h.implied...), kv...), noise: h.noise}
}

func (h *hclogAdapter) Name() string { return h.name }

func (h *hclogAdapter) Named(name string) hclog.Logger {
	full := name
	if h.name != "" {
		full = h.name + "." + name
	}
	return &hclogAdapter{l: h.l.With("subsystem", full), name: full, implied: h.implied, noise: h.noise}
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{l: h.l.With("subsystem", name), name: name, implied: h.implied, noise: h.noise}
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

// Rate limiting of raft's noise while a peer is down.
//
// While a peer is unreachable, hashicorp/raft logs every failed heartbeat
// (one each half heartbeat timeout, once its backoff is at its cap), every
// failed append, every lease check that missed the peer and, on a
// candidate, every vote request it could not send: several lines a second
// that say the same thing. At most one line per peer per noiseInterval is
// logged; it carries suppressed=N, the lines about that peer left out
// since the previous one. The first failure after a quiet interval is
// always logged at once. A peer that comes back says nothing here: its
// recovery shows in the lines that stop, and in cluster status.

// noiseInterval is the least time between two logged lines of peerNoise
// about one peer.
const noiseInterval = 10 * time.Second

// peerNoise are the messages of hashicorp/raft that repeat while a peer is
// down, each with the key of the attribute that names the peer.
var peerNoise = map[string]string{
	"failed to appendEntries to":              "peer",      // hraft.Server
	"failed to heartbeat to":                  "peer",      // hraft.ServerAddress
	"failed to pipeline appendEntries":        "peer",      // hraft.Server
	"failed to start pipeline replication to": "peer",      // hraft.Server
	"failed to send snapshot to":              "peer",      // hraft.Server
	"failed to contact":                       "server-id", // hraft.ServerID
	"failed to make requestVote RPC":          "target",    // hraft.Server
}

// maxNoisePeers bounds the peers a noiseLimiter remembers; a cluster has
// far fewer members, and a limiter that is full forgets the peers that
// have been quiet longest first.
const maxNoisePeers = 64

// noiseLimiter lets through at most one line per peer per interval and
// counts the others. It is safe for concurrent use.
type noiseLimiter struct {
	interval time.Duration
	now      func() time.Time // time.Now; tests set their own clock

	mu    sync.Mutex
	peers map[string]*peerLines                  // by peer (noiseLimiter.peer)
	addrs map[hraft.ServerID]hraft.ServerAddress // learned from the lines
}

// peerLines is what a noiseLimiter knows of one peer.
type peerLines struct {
	last       time.Time // when its last line was let through
	suppressed uint64    // lines left out since
}

func newNoiseLimiter(interval time.Duration) *noiseLimiter {
	return &noiseLimiter{interval: interval, now: time.Now, peers: map[string]*peerLines{}, addrs: map[hraft.ServerID]hraft.ServerAddress{}}
}

// allow reports whether a line about peer may be logged at now and, if it
// may, how many lines about it were left out since the last one.
func (l *noiseLimiter) allow(peer string, now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[peer]
	if p == nil {
		if len(l.peers) >= maxNoisePeers {
			l.forgetQuietest()
		}
		l.peers[peer] = &peerLines{last: now}
		return true, 0
	}
	if now.Sub(p.last) < l.interval {
		p.suppressed++
		return false, 0
	}
	n := p.suppressed
	p.last, p.suppressed = now, 0
	return true, n
}

// forgetQuietest drops the peer whose last line is the oldest. Its count
// of left-out lines is lost; this happens only past maxNoisePeers peers.
func (l *noiseLimiter) forgetQuietest() {
	var oldest string
	var at time.Time
	for k, p := range l.peers {
		if oldest == "" || p.last.Before(at) {
			oldest, at = k, p.last
		}
	}
	delete(l.peers, oldest)
}

// peer returns the peer that hclog key/value pairs name under key, by its
// address. raft names a peer by its server (ID and address), by its
// address alone or by its ID alone, depending on the message; the
// addresses of the IDs it named with both are remembered for the lines
// that name only the ID.
func (l *noiseLimiter) peer(kv []any, key string) string {
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k != key {
			continue
		}
		switch v := kv[i+1].(type) {
		case hraft.Server:
			l.mu.Lock()
			if _, ok := l.addrs[v.ID]; !ok && len(l.addrs) >= maxNoisePeers {
				clear(l.addrs)
			}
			l.addrs[v.ID] = v.Address
			l.mu.Unlock()
			return "addr " + string(v.Address)
		case hraft.ServerAddress:
			return "addr " + string(v)
		case hraft.ServerID:
			l.mu.Lock()
			addr, ok := l.addrs[v]
			l.mu.Unlock()
			if ok {
				return "addr " + string(addr)
			}
			return "id " + string(v)
		default:
			return fmt.Sprint(v)
		}
	}
	return ""
}
