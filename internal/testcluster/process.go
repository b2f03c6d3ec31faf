package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer that a process may write while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ChildEnv is the environment of child processes: this process's, without
// any TENANTKV_ variable that could change what they do, plus extra. A
// binary built with the race detector would sleep a second when it exits
// (GORACE's atexit_sleep_ms): every CLI invocation would take that long.
func ChildEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTKV_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return append(env, extra...)
}

// Process is one running program, normally `tenantkv serve`.
type Process struct {
	Name   string
	Cmd    *exec.Cmd
	Stdout *Buffer
	Stderr *Buffer

	// ID, Addr (clients) and HTTPAddr ("" if unknown) come from the ready
	// line, once WaitReady returned nil.
	ID, Addr, HTTPAddr string

	exited  chan struct{} // closed when the process has exited
	waitErr error         // set before exited is closed

	mu     sync.Mutex
	paused bool
	killed bool
}

// StartProcess starts prog with args in dir and env.
func StartProcess(name, dir string, env []string, prog string, args ...string) (*Process, error) {
	p := &Process{Name: name, Stdout: &Buffer{}, Stderr: &Buffer{}, exited: make(chan struct{})}
	p.Cmd = exec.Command(prog, args...)
	p.Cmd.Dir = dir
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.Cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Launch starts `sh -c "exec <line>"` in dir, a shell so that command lines
// run as written (the README's). The process is killed when the test ends;
// a data race it reported fails the test, and a failed test logs its
// output.
func Launch(t testing.TB, name, dir string, env []string, line string) *Process {
	t.Helper()
	p, err := StartProcess(name, dir, env, "sh", "-c", "exec "+line)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if strings.Contains(p.Stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race (its stderr follows)", name)
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr (last 3000 bytes):\n%s", name, p.Stdout.String(), name, Tail(p.Stderr.String(), 3000))
		}
	})
	return p
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitErr is what Wait returned; valid once Exited is closed.
func (p *Process) WaitErr() error {
	<-p.exited
	return p.waitErr
}

// Alive reports whether the process is running.
func (p *Process) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (nothing is flushed or closed) and waits for the
// process to go. It returns false if it was not running.
func (p *Process) Kill() bool {
	if !p.Alive() {
		return false
	}
	p.mu.Lock()
	p.killed = true
	p.paused = false
	p.mu.Unlock()
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	return true
}

// Killed reports whether Kill was called.
func (p *Process) Killed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// Pause stops the process with SIGSTOP: it stops answering without closing
// anything, like a long GC pause or a stalled VM. It returns false if the
// process was not running or already paused.
func (p *Process) Pause() bool {
	if !p.Alive() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		return false
	}
	p.paused = true
	return p.Cmd.Process.Signal(syscall.SIGSTOP) == nil
}

// Resume continues a paused process.
func (p *Process) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		_ = p.Cmd.Process.Signal(syscall.SIGCONT)
	}
	p.paused = false
}

// Paused reports whether the process is stopped by Pause.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Stop sends SIGTERM and waits at most timeout for the process to exit; it
// returns how it exited.
func (p *Process) Stop(timeout time.Duration) error {
	p.Resume()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v of SIGTERM", p.Name, timeout)
	}
}

// WaitReady waits until the node printed its ready line and, when its HTTP
// address is known, /readyz answers 200. It fails with ErrAddrInUse when
// the node exited because an address was taken.
func (p *Process) WaitReady(ctx context.Context) error { return p.waitReady(ctx, true) }

// WaitReadyLine waits for the ready line only.
func (p *Process) WaitReadyLine(ctx context.Context) error { return p.waitReady(ctx, false) }

// WaitStarted waits until the node has started (it logged "serving":
// it listens and runs raft), ready or not.
func (p *Process) WaitStarted(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		if line := ReadyLine(p.Stdout.String()); line != "" {
			p.parseReadyLine(line)
			return nil
		}
		if e := p.Stderr.String(); strings.Contains(e, "msg=serving ") || strings.Contains(e, `"msg":"serving"`) {
			return nil
		}
		select {
		case <-p.exited:
			if strings.Contains(p.Stderr.String(), "address already in use") {
				return fmt.Errorf("%s: %w", p.Name, ErrAddrInUse)
			}
			return fmt.Errorf("%s exited before it started: %v: %s", p.Name, p.waitErr, Tail(p.Stderr.String(), 2000))
		case <-ctx.Done():
			return fmt.Errorf("%s not started after %v: %s", p.Name, ReadyTimeout, Tail(p.Stderr.String(), 2000))
		case <-tick.C:
		}
	}
}

func (p *Process) waitReady(ctx context.Context, readyz bool) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	hc := &http.Client{Timeout: time.Second}
	for {
		if line := ReadyLine(p.Stdout.String()); line != "" {
			p.parseReadyLine(line)
			if !readyz || p.HTTPAddr == "" || readyzOK(ctx, hc, p.HTTPAddr) {
				return nil
			}
		}
		select {
		case <-p.exited:
			if strings.Contains(p.Stderr.String(), "address already in use") {
				return fmt.Errorf("%s: %w", p.Name, ErrAddrInUse)
			}
			return fmt.Errorf("%s exited before it was ready: %v: %s", p.Name, p.waitErr, Tail(p.Stderr.String(), 2000))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %s", p.Name, ReadyTimeout, Tail(p.Stderr.String(), 2000))
		case <-tick.C:
		}
	}
}

func readyzOK(ctx context.Context, hc *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ReadyLine returns serve's ready line from its stdout, or "".
func ReadyLine(stdout string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "tenantkv: node ") && strings.Contains(l, " ready: ") {
			return l
		}
	}
	return ""
}

// parseReadyLine takes the node ID and addresses from the ready line,
// "tenantkv: node ID ready: clients on A, raft on B, http on C, data in D, …".
func (p *Process) parseReadyLine(line string) {
	f := strings.Fields(line)
	if len(f) > 2 {
		p.ID = f[2]
	}
	for i := 0; i+2 < len(f); i++ {
		v := strings.TrimSuffix(f[i+2], ",")
		switch {
		case f[i] == "clients" && f[i+1] == "on":
			p.Addr = v
		case f[i] == "http" && f[i+1] == "on" && v != "-":
			p.HTTPAddr = v
		}
	}
}

// Tail returns the last n bytes of s, marked as cut when they are not all.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
