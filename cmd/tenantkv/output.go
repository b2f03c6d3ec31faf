package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/tenantkv/tenantkv/client"
)

// usageText is the body of `tenantkv help` after the command list.
const usageText = `Global flags (before or after the command; flags win over the environment):
  --endpoints ADDR[,ADDR...]  client addresses of nodes (TENANTKV_ENDPOINTS, default 127.0.0.1:7400)
  --token TOKEN               access token (TENANTKV_TOKEN)
  --token-file FILE           file holding the token (TENANTKV_TOKEN_FILE);
                              with no token at all, ./data/operator.token is used if it exists
  --tenant NAME               tenant of get/put/del/scan (TENANTKV_TENANT); a tenant
                              token without --tenant uses its own tenant
  --json                      print results of get, scan, tenant list/show/tokens,
                              tenant token, token create and cluster status as JSON
  --timeout DURATION          how long a command may take (default 10s, 0: no limit)
  --tls-ca FILE               connect over TLS, trusting the CA certificates in FILE
                              (TENANTKV_TLS_CA; without it, the system's roots)
  --tls-cert FILE, --tls-key FILE
                              connect over TLS with this client certificate, for
                              nodes that require one (TENANTKV_TLS_CERT, TENANTKV_TLS_KEY)

A key or value that starts with '-' goes after "--": tenantkv put -- -k -v

Exit status: 0 success; 1 the command failed (one line on stderr, such as
"tenantkv: not found"); 2 the command line is wrong.
`

func synopsis(c *command) string {
	s := "tenantkv " + c.path
	if c.args != "" {
		s += " " + c.args
	}
	return s
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "tenantkv: a replicated multi-tenant ordered key-value store.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: tenantkv [global flags] COMMAND [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		s := c.path
		switch {
		case len(c.args) > 20:
			// The positional arguments, then "[flags]".
			for _, w := range strings.Fields(c.args) {
				if strings.HasPrefix(w, "[") {
					break
				}
				s += " " + w
			}
			s += " [flags]"
		case c.args != "":
			s += " " + c.args
		}
		fmt.Fprintf(tw, "  %s\t%s\n", s, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprint(w, usageText)
}

func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: %s\n\n%s.\n", synopsis(c), strings.ToUpper(c.summary[:1])+c.summary[1:])
	if c.long != "" {
		fmt.Fprintf(w, "\n%s", c.long)
	}
	if c.setup == nil {
		return
	}
	fs := newFlagSet(c.path)
	c.setup(fs, func(string) string { return "" })
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			typ = " " + typ
		}
		var notes []string
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			notes = append(notes, "default "+f.DefValue)
		}
		if c == serveCommand {
			notes = append(notes, "env "+envName(f.Name))
		}
		fmt.Fprintf(w, "  --%s%s\n      %s", f.Name, typ, usage)
		if len(notes) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(notes, ", "))
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintln(w, "\nGlobal flags: see 'tenantkv help'.")
}

// JSON output. Every --json command prints one JSON document. Keys and
// values are bytes: a field such as "key" holds them as a string when they
// are valid UTF-8; otherwise "key" is absent and "key_base64" holds them in
// standard base64. Exactly one of the two is present.

type kvJSON struct {
	Key         *string `json:"key,omitempty"`
	KeyBase64   *string `json:"key_base64,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

func bytesJSON(b []byte) (text, b64 *string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

func newKVJSON(key, value []byte) kvJSON {
	var kv kvJSON
	kv.Key, kv.KeyBase64 = bytesJSON(key)
	kv.Value, kv.ValueBase64 = bytesJSON(value)
	return kv
}

type limitsJSON struct {
	MaxBytes      uint64 `json:"max_bytes"`
	MaxKeys       uint64 `json:"max_keys"`
	OpsPerSec     uint64 `json:"ops_per_sec"`
	Burst         uint64 `json:"burst"`
	MaxConcurrent uint64 `json:"max_concurrent"`
	MaxWatches    uint64 `json:"max_watches"`

	MaxConnections uint64 `json:"max_connections"`
}

type usageJSON struct {
	LogicalBytes uint64 `json:"logical_bytes"`
	Keys         uint64 `json:"keys"`
	DiskBytes    uint64 `json:"disk_bytes"`
	Reads        uint64 `json:"reads"`
	Writes       uint64 `json:"writes"`
	BytesRead    uint64 `json:"bytes_read"`
	BytesWritten uint64 `json:"bytes_written"`
	Throttled    uint64 `json:"throttled"`
	Errors       uint64 `json:"errors"`
}

// headroomJSON is what is left under the storage limits: limit − usage,
// null when there is no limit, negative when a limit was lowered below what
// the tenant stores.
type headroomJSON struct {
	Keys         *int64 `json:"keys"`
	LogicalBytes *int64 `json:"logical_bytes"`
}

type tenantJSON struct {
	ID        uint64            `json:"id"`
	Name      string            `json:"name"`
	State     string            `json:"state"`
	CreatedAt time.Time         `json:"created_at"`
	Limits    limitsJSON        `json:"limits"`
	Labels    map[string]string `json:"labels"`
	Usage     usageJSON         `json:"usage"`
	Headroom  headroomJSON      `json:"headroom"`
	// TrialEnds is set in state trial, PurgeAt in state cancelled.
	TrialEnds *time.Time `json:"trial_ends,omitempty"`
	PurgeAt   *time.Time `json:"purge_at,omitempty"`
}

func newTenantJSON(t *client.TenantInfo) tenantJSON {
	labels := t.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return tenantJSON{
		ID: t.ID, Name: t.Name, State: t.State, CreatedAt: t.CreatedAt.UTC(),
		Limits: limitsJSON(t.Limits), Labels: labels, Usage: usageJSON(t.Usage),
		Headroom: headroomJSON{
			Keys:         headroom(t.Limits.MaxKeys, t.Usage.Keys),
			LogicalBytes: headroom(t.Limits.MaxBytes, t.Usage.LogicalBytes),
		},
		TrialEnds: optTime(t.TrialEnds), PurgeAt: optTime(t.PurgeAt),
	}
}

// optTime is t in UTC, or nil for the zero time.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// newTokenJSON is a token just made: the only time its secret is shown.
type newTokenJSON struct {
	Token    string `json:"token"`
	ID       string `json:"id"`
	Tenant   string `json:"tenant"` // "" for an operator token
	ReadOnly bool   `json:"read_only"`
}

// tokenJSON describes a token, never its secret.
type tokenJSON struct {
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	ReadOnly  bool       `json:"read_only"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"` // null: never
	Expired   bool       `json:"expired"`
}

func newTokenInfoJSON(t *client.TokenInfo, now time.Time) tokenJSON {
	out := tokenJSON{ID: t.ID, Tenant: t.Tenant, ReadOnly: t.ReadOnly, CreatedAt: t.CreatedAt.UTC()}
	if !t.ExpiresAt.IsZero() {
		x := t.ExpiresAt.UTC()
		out.ExpiresAt = &x
		out.Expired = !now.Before(x)
	}
	return out
}

// writeJSON prints v indented, followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// jsonArray streams a JSON array, one compact element per line, so that a
// long scan needs no memory for what it has printed.
type jsonArray struct {
	w io.Writer
	n int
}

func (a *jsonArray) add(v any) error {
	b, err := marshalCompact(v)
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	_, err = fmt.Fprintf(a.w, "%s%s", sep, b)
	return err
}

func (a *jsonArray) close() error {
	if a.n == 0 {
		_, err := io.WriteString(a.w, "[]\n")
		return err
	}
	_, err := io.WriteString(a.w, "\n]\n")
	return err
}

func marshalCompact(v any) ([]byte, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(sb.String(), "\n")), nil
}

// formatLimits renders non-zero limits as "name=value" pairs, or "none".
func formatLimits(l client.Limits) string {
	var parts []string
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"max_bytes", l.MaxBytes}, {"max_keys", l.MaxKeys}, {"ops_per_sec", l.OpsPerSec},
		{"burst", l.Burst}, {"max_concurrent", l.MaxConcurrent}, {"max_watches", l.MaxWatches},
		{"max_connections", l.MaxConnections},
	} {
		if f.v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, f.v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
