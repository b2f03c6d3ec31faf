package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// jsonKeys decodes one JSON log line, failing on a key that is there
// twice (encoding/json would keep the last silently), and returns its
// top-level keys in order with their values.
func jsonKeys(t *testing.T, line string) ([]string, map[string]any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line %q is not a JSON object: %v", line, err)
	}
	var keys []string
	vals := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		k := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if _, dup := vals[k]; dup {
			t.Errorf("key %q twice in %s", k, line)
		}
		keys = append(keys, k)
		vals[k] = v
	}
	return keys, vals
}

func TestUniqueAttrs(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want string // the keys after time, level and msg, with values
	}{
		{"same value from every layer", func(l *slog.Logger) {
			l.With("node", "n1").With("node", "n1", "component", "raft").Info("m", "node", "n1")
		}, "node=n1 component=raft"},
		{"another value keeps a suffix", func(l *slog.Logger) {
			l.With("node", "n1").Info("m", "node", "Node at 127.0.0.1:7401 [Leader]", "node", "third")
		}, "node=n1 node_2=Node at 127.0.0.1:7401 [Leader] node_3=third"},
		{"twice in one record", func(l *slog.Logger) {
			l.Info("m", "a", 1, "a", 1, "b", 2)
		}, "a=1 b=2"},
		{"a suffix already taken by the same value", func(l *slog.Logger) {
			l.With("k", "x", "k_2", "y").Info("m", "k", "y")
		}, "k=x k_2=y"},
		{"values that cannot be compared", func(l *slog.Logger) {
			l.With("servers", []string{"a"}).Info("m", "servers", []string{"a"}, "m", map[string]int{"x": 1})
		}, "servers=[a] m=map[x:1]"},
		{"slog's own keys are taken", func(l *slog.Logger) {
			l.With("level", "x").Info("m", "time", "1.2s", "msg", "other")
		}, "level_2=x time_2=1.2s msg_2=other"},
		{"a group is a scope of its own", func(l *slog.Logger) {
			l.With("node", "n1").WithGroup("g").Info("m", "node", "n1")
		}, "node=n1 g=map[node:n1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := newLogger(&buf, logFormatJSON, slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			tt.log(l)
			keys, vals := jsonKeys(t, strings.TrimSpace(buf.String()))
			var got []string
			for _, k := range keys[3:] {
				got = append(got, fmt.Sprintf("%s=%v", k, vals[k]))
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("logged %s\nwant %s", strings.Join(got, " "), tt.want)
			}
		})
	}
}

func TestLogFormats(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLogger(&buf, logFormatText, slog.LevelWarn)
	if err != nil {
		t.Fatal(err)
	}
	l.With("node", "n1").Info("hidden")
	l.With("node", "n1").Warn("shown", "node", "n1")
	if got := buf.String(); strings.Count(got, "\n") != 1 || strings.Count(got, "node=n1") != 1 || !strings.Contains(got, "msg=shown") {
		t.Errorf("text log %q", got)
	}
	if _, err := newLogger(&buf, "xml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), `--log-format: "xml" is not text or json`) {
		t.Errorf("--log-format xml: %v", err)
	}
	code, _, stderr := runCLI(t, envMap(), "", "serve", "--log-format", "yaml")
	if code != 2 || !strings.Contains(stderr, `--log-format: "yaml" is not text or json`) {
		t.Errorf("serve --log-format yaml: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, envMap("TENANTKV_LOG_FORMAT", "yaml"), "", "serve")
	if code != 2 || !strings.Contains(stderr, `--log-format: "yaml"`) {
		t.Errorf("TENANTKV_LOG_FORMAT=yaml serve: exit %d, %q", code, stderr)
	}
}
