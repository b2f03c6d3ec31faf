package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Deadlines of a local etcd cluster.
const (
	etcdReadyTimeout = 60 * time.Second
	etcdStopTimeout  = 15 * time.Second
	etcdPollEvery    = 50 * time.Millisecond
)

// etcdOptions configure startEtcd.
type etcdOptions struct {
	// Binary is the etcd executable.
	Binary string
	// Members is the number of members; zero means 1.
	Members int
	// Dir is where the cluster's temporary directory is made; empty means
	// the system's temporary directory.
	Dir string
	// Pprof serves /debug/pprof on the client URLs (--enable-pprof).
	Pprof bool
	// Status receives a line when the cluster is up; nil discards it.
	Status io.Writer
}

// etcdCluster is a cluster of real etcd processes on free ports of
// 127.0.0.1, with their data in a temporary directory. Close stops them and
// removes the directory.
type etcdCluster struct {
	dir     string
	members []*etcdMember
}

// etcdMember is one etcd process.
type etcdMember struct {
	name, clientURL, peerURL string
	cmd                      *exec.Cmd
	log                      *os.File
	logPath                  string
	exited                   chan struct{}
	waitErr                  error // set before exited is closed
}

// startEtcd starts a cluster of opts.Members members, all at once as etcd's
// static bootstrap wants (--initial-cluster names every member), and
// returns once every member reports the same leader. On failure it stops
// what it started. A member that fails because a port was taken meanwhile
// fails the start: the caller may try again.
func startEtcd(ctx context.Context, opts etcdOptions) (_ *etcdCluster, err error) {
	n := max(opts.Members, 1)
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("etcd binary: %w", err)
	}
	dir, err := os.MkdirTemp(opts.Dir, "etcd-bench-")
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{dir: dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range n {
		m := &etcdMember{
			name:      fmt.Sprintf("n%d", i+1),
			clientURL: "http://" + ports[2*i],
			peerURL:   "http://" + ports[2*i+1],
			exited:    make(chan struct{}),
		}
		m.logPath = filepath.Join(dir, m.name+".log")
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	start := time.Now()
	for _, m := range c.members {
		args := []string{
			"--name", m.name,
			"--data-dir", filepath.Join(dir, m.name),
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "tenantkv-bench",
			"--log-level", "warn",
		}
		if opts.Pprof {
			args = append(args, "--enable-pprof")
		}
		if m.log, err = os.Create(m.logPath); err != nil {
			return nil, err
		}
		m.cmd = exec.Command(opts.Binary, args...)
		m.cmd.SysProcAttr = childProcAttr()
		m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
		if err := m.cmd.Start(); err != nil {
			m.log.Close()
			m.log = nil
			return nil, fmt.Errorf("start etcd member %s: %w", m.name, err)
		}
		go func() {
			m.waitErr = m.cmd.Wait()
			close(m.exited)
		}()
	}
	if err := c.waitLeader(ctx); err != nil {
		return nil, err
	}
	if opts.Status != nil {
		fmt.Fprintf(opts.Status, "local etcd cluster of %d member(s) up in %.1fs (%s)\n", n, time.Since(start).Seconds(), dir)
	}
	return c, nil
}

// Endpoints returns the client URLs of the members, in member order.
func (c *etcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// Leader returns the client URL of the current leader.
func (c *etcdCluster) Leader(ctx context.Context) (string, error) {
	cli, err := newEtcdClient(c.Endpoints())
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ids := map[uint64]string{}
	var leader uint64
	for _, ep := range c.Endpoints() {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			return "", fmt.Errorf("etcd status of %s: %w", ep, err)
		}
		ids[st.Header.MemberId] = ep
		leader = st.Leader
	}
	ep, ok := ids[leader]
	if !ok {
		return "", errors.New("etcd: no leader among the members")
	}
	return ep, nil
}

// waitLeader waits until every member answers a status request naming the
// same, non-zero leader.
func (c *etcdCluster) waitLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, etcdReadyTimeout)
	defer cancel()
	cli, err := newEtcdClient(c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	tick := time.NewTicker(etcdPollEvery)
	defer tick.Stop()
	var last error
	for {
		for _, m := range c.members {
			select {
			case <-m.exited:
				return fmt.Errorf("etcd member %s exited before the cluster was ready: %v: %s", m.name, m.waitErr, m.logTail())
			default:
			}
		}
		if last = c.sameLeader(ctx, cli); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("etcd cluster not ready after %v: %v", etcdReadyTimeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// sameLeader returns nil when every member names the same leader.
func (c *etcdCluster) sameLeader(ctx context.Context, cli *clientv3.Client) error {
	var leader uint64
	for _, ep := range c.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, ep)
		cancel()
		switch {
		case err != nil:
			return err
		case st.Leader == 0:
			return fmt.Errorf("%s knows no leader", ep)
		case leader != 0 && st.Leader != leader:
			return fmt.Errorf("members disagree on the leader")
		}
		leader = st.Leader
	}
	return nil
}

// Close stops every member (SIGTERM, then SIGKILL after etcdStopTimeout)
// and removes the cluster's directory. It is safe to call more than once,
// and on a nil *etcdCluster.
func (c *etcdCluster) Close() error {
	if c == nil {
		return nil
	}
	for i := len(c.members) - 1; i >= 0; i-- {
		c.members[i].stop()
	}
	c.members = nil
	if c.dir == "" {
		return nil
	}
	err := os.RemoveAll(c.dir)
	c.dir = ""
	return err
}

// stop ends the member gracefully, or kills it after etcdStopTimeout.
func (m *etcdMember) stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	defer m.log.Close()
	select {
	case <-m.exited:
		return
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = m.cmd.Process.Kill()
	}
	select {
	case <-m.exited:
	case <-time.After(etcdStopTimeout):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// logTail returns the end of the member's log.
func (m *etcdMember) logTail() string {
	b, _ := os.ReadFile(m.logPath)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// newEtcdClient returns a client of the given endpoints with etcd's default
// balancing (round robin over the endpoints) and a silent logger.
func newEtcdClient(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client of %v: %w", endpoints, err)
	}
	return cli, nil
}

// freePorts returns n distinct free TCP addresses of 127.0.0.1. Another
// process may take one before it is used.
func freePorts(n int) ([]string, error) {
	var addrs []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}
