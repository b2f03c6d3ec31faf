package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: what is written to tty can be read
// from ptm. Both are closed when the test ends.
func openPTY(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	var n uint32
	var unlock int32
	for _, c := range []struct {
		req uintptr
		arg unsafe.Pointer
	}{{syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)}, {syscall.TIOCGPTN, unsafe.Pointer(&n)}} {
		rc, err := ptm.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var errno syscall.Errno
		if err := rc.Control(func(fd uintptr) {
			_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, c.req, uintptr(c.arg))
		}); err != nil {
			t.Fatal(err)
		}
		if errno != 0 {
			t.Skipf("pseudo-terminal ioctl: %v", errno)
		}
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptm, tty
}

// drain reads what ptm has to give until nothing comes for a moment.
func drain(t *testing.T, ptm *os.File) string {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		if err := ptm.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := ptm.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestProgressBarOnTerminal runs export and import with stderr on a
// pseudo-terminal: the bar is drawn there, and a terminal on stdout (export)
// or stdin (import) is refused.
func TestProgressBarOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	ptm, tty := openPTY(t)
	if !isTTY(tty) {
		t.Fatal("isTTY(a pseudo-terminal) = false")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	srv := startInProcess(t, filepath.Join(dir, "data"))
	env := envMap(envEndpoints, srv.Addr())
	for _, args := range [][]string{{"tenant", "create", "acme"}, {"--tenant", "acme", "put", "a", "1"}, {"--tenant", "acme", "put", "b", "22"}} {
		if code, _, stderr := runCLI(t, env, "", args...); code != 0 {
			t.Fatalf("tenantkv %q: %s", args, stderr)
		}
	}

	var file bytes.Buffer
	if code := run(t.Context(), []string{"tenant", "export", "acme"}, env, strings.NewReader(""), &file, tty); code != 0 {
		t.Fatalf("export: exit %d: %q", code, drain(t, ptm))
	}
	if out := drain(t, ptm); !strings.Contains(out, "\rexport acme export [") || !strings.Contains(out, "100% 2/2 keys 5 B") || !strings.HasSuffix(out, "\r\n") {
		t.Errorf("export progress on the terminal: %q", out)
	}
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{"tenant", "import", "copy"}, env, bytes.NewReader(file.Bytes()), &stdout, tty); code != 0 {
		t.Fatalf("import: exit %d: %q", code, drain(t, ptm))
	}
	out := drain(t, ptm)
	if !strings.Contains(out, "\rimport copy verify [") || !strings.Contains(out, "\rimport copy load [") || !strings.Contains(out, "100% 2/2 keys 5 B") {
		t.Errorf("import progress on the terminal: %q", out)
	}
	if stdout.String() != "imported 2 keys (5 bytes) into new tenant copy\n" {
		t.Errorf("import stdout: %q", stdout.String())
	}

	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"tenant", "export", "acme"}, env, strings.NewReader(""), tty, &stderr); code != 2 || !strings.Contains(stderr.String(), "stdout is a terminal") {
		t.Errorf("export to a terminal: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(t.Context(), []string{"tenant", "import", "other"}, env, tty, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "stdin is a terminal") {
		t.Errorf("import from a terminal: exit %d, %q", code, stderr.String())
	}
}
