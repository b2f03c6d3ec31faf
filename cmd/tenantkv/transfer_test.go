package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tenantkv/tenantkv/client"
)

func TestRenderProgress(t *testing.T) {
	for _, tc := range []struct {
		p    client.Progress
		want string
	}{
		{client.Progress{Phase: client.PhaseExport, Keys: 0, TotalKeys: 10},
			"export acme export [>         ]   0% 0/10 keys 0 B"},
		{client.Progress{Phase: client.PhaseLoad, Keys: 5, Bytes: 1536, TotalKeys: 10},
			"export acme load [=====>    ]  50% 5/10 keys 1.5 KiB"},
		{client.Progress{Phase: client.PhaseLoad, Keys: 10, Bytes: 3 << 20, TotalKeys: 10},
			"export acme load [==========] 100% 10/10 keys 3.0 MiB"},
		// A total that was an estimate and turned out low: a full bar.
		{client.Progress{Phase: client.PhaseExport, Keys: 12, Bytes: 5 << 30, TotalKeys: 10},
			"export acme export [==========] 100% 12/10 keys 5.0 GiB"},
		{client.Progress{Phase: client.PhaseVerify, Keys: 7, Bytes: 100},
			"export acme verify 7 keys 100 B"},
	} {
		if got := renderProgress("export acme", tc.p, 10); got != tc.want {
			t.Errorf("renderProgress(%+v) =\n%q, want\n%q", tc.p, got, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1<<20 + 1<<19: "1.5 MiB", 1 << 40: "1.0 TiB", 1 << 62: "4096.0 PiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestProgressBarOnlyOnTerminals(t *testing.T) {
	var buf bytes.Buffer
	bar := newProgressBar(&buf, "import x")
	bar.update(client.Progress{Phase: client.PhaseVerify, Keys: 1})
	bar.finish(true)
	if buf.Len() != 0 {
		t.Errorf("a bar was drawn on a buffer: %q", buf.String())
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, w := range []any{f, null, &buf, nil} {
		if isTTY(w) {
			t.Errorf("isTTY(%v) = true", w)
		}
	}
}

// TestProgressBarDrawing drives the bar's drawing on a writer that claims
// to be a terminal.
func TestProgressBarDrawing(t *testing.T) {
	var buf bytes.Buffer
	bar := &progressBar{w: &buf, label: "import x"}
	bar.update(client.Progress{Phase: client.PhaseVerify, Keys: 1, TotalKeys: 2})
	bar.update(client.Progress{Phase: client.PhaseVerify, Keys: 2, TotalKeys: 2}) // too soon: not drawn yet
	bar.update(client.Progress{Phase: client.PhaseLoad, Keys: 2, TotalKeys: 2})   // a new phase: both drawn
	bar.finish(true)
	want := "\rimport x verify [===============>              ]  50% 1/2 keys 0 B\x1b[K" +
		"\rimport x verify [==============================] 100% 2/2 keys 0 B\x1b[K\n" +
		"\rimport x load [==============================] 100% 2/2 keys 0 B\x1b[K" +
		"\rimport x load [==============================] 100% 2/2 keys 0 B\x1b[K\n"
	if buf.String() != want {
		t.Errorf("drawn:\n%q\nwant\n%q", buf.String(), want)
	}
}
