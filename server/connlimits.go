package server

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
)

// Defaults of the memory and connection limits (Config).
const (
	// DefaultMemoryBudget is the node's budget of request and answer bytes
	// in flight when Config.MemoryBudget is 0.
	DefaultMemoryBudget = 1 << 30
	// DefaultMaxConnMemory is one connection's share when
	// Config.MaxConnMemory is 0 (at least 4×MaxFrame).
	DefaultMaxConnMemory = 64 << 20
	// DefaultMaxConnections caps the derived default of
	// Config.MaxConnections: past it, memory runs out before descriptors.
	DefaultMaxConnections = 10_000
	// DefaultIdleTimeout is Config.IdleTimeout's default.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultWriteTimeout is Config.WriteTimeout's default.
	DefaultWriteTimeout = 30 * time.Second
	// OperatorConnReserve is how many connections past MaxConnections the
	// node still accepts, for operator tokens only: a tenant that fills
	// the node cannot lock its operator out.
	OperatorConnReserve = 64
)

// fdLimit returns the soft RLIMIT_NOFILE of the process (the Go runtime
// raises it to the hard limit at start), or 0 if it cannot be read.
func fdLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// defaultMaxConnections derives MaxConnections from a descriptor limit:
// a quarter of it (between 128 and 4096) stays in reserve for the store's
// files, the raft log, snapshots and peer connections, and
// OperatorConnReserve above the cap for operators.
func defaultMaxConnections(nofile uint64) uint64 {
	if nofile == 0 {
		return DefaultMaxConnections
	}
	reserve := min(max(nofile/4, 128), 4096) + OperatorConnReserve
	if nofile <= reserve+16 {
		return 16
	}
	return min(nofile-reserve, DefaultMaxConnections)
}

func (c *Config) validateConnLimits() error {
	switch {
	case c.MemoryBudget < 0:
		return errors.New("server: negative MemoryBudget")
	case c.MaxConnMemory < 0:
		return errors.New("server: negative MaxConnMemory")
	case c.WriteTimeout < 0:
		return errors.New("server: negative WriteTimeout")
	case c.IdleTimeout < 0:
		return errors.New("server: negative IdleTimeout")
	}
	frame := int64(c.MaxFrame)
	if frame == 0 {
		frame = wire.DefaultMaxFrame
	}
	if c.MaxConnMemory != 0 && c.MaxConnMemory < 2*frame {
		return fmt.Errorf("server: MaxConnMemory %d is below twice MaxFrame (%d): a full frame could not be decoded", c.MaxConnMemory, 2*frame)
	}
	if c.MemoryBudget != 0 && c.MemoryBudget < max(c.MaxConnMemory, 2*frame) {
		return fmt.Errorf("server: MemoryBudget %d is below MaxConnMemory or twice MaxFrame (%d)", c.MemoryBudget, max(c.MaxConnMemory, 2*frame))
	}
	if c.MaxConnections != 0 && c.MaxConnectionsPerTenant > c.MaxConnections {
		return fmt.Errorf("server: MaxConnectionsPerTenant %d is above MaxConnections %d", c.MaxConnectionsPerTenant, c.MaxConnections)
	}
	return nil
}

// setConnDefaults runs after MaxFrame has its default.
func (c *Config) setConnDefaults() {
	if c.MaxConnMemory == 0 {
		c.MaxConnMemory = max(DefaultMaxConnMemory, 4*int64(c.MaxFrame))
		if c.MemoryBudget != 0 {
			c.MaxConnMemory = max(min(c.MaxConnMemory, c.MemoryBudget), 2*int64(c.MaxFrame))
		}
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = max(DefaultMemoryBudget, c.MaxConnMemory)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections(fdLimit())
	}
	if c.MaxConnectionsPerTenant == 0 {
		c.MaxConnectionsPerTenant = max(c.MaxConnections/4, 1)
	}
}

// connLimits counts the node's client connections, and each tenant's
// authenticated ones.
type connLimits struct {
	mu       sync.Mutex
	open     uint64 // accepted and not yet closed, authenticated or not
	byTenant map[keyspace.TenantID]int

	refusedNode, refusedTenant     atomic.Uint64
	closedIdle, closedSlow         atomic.Uint64
	refusedDecode, lingeringRefuse atomic.Int64
}

// admitConn counts a new connection, or refuses it when the node already
// has MaxConnections plus the operators' reserve open. A refused
// connection is answered and closed in the background.
func (s *Server) admitConn(nc net.Conn) bool {
	l := &s.connLimits
	l.mu.Lock()
	ok := l.open < s.cfg.MaxConnections+OperatorConnReserve
	if ok {
		l.open++
	}
	l.mu.Unlock()
	if !ok {
		l.refusedNode.Add(1)
		s.refuseConn(nc)
	}
	return ok
}

// releaseConn uncounts a connection admitConn admitted.
func (s *Server) releaseConn() {
	l := &s.connLimits
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
}

// refuseConn answers a connection the node cannot take with "too many
// connections" and closes it. The answer is written, the client's hello
// read and dropped for up to a second (closing with unread input would
// reset the connection and lose the answer), by at most 64 goroutines at
// once; past that the connection is just closed.
func (s *Server) refuseConn(nc net.Conn) {
	l := &s.connLimits
	if l.lingeringRefuse.Add(1) > 64 {
		l.lingeringRefuse.Add(-1)
		nc.Close()
		return
	}
	go func() {
		defer l.lingeringRefuse.Add(-1)
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(time.Second))
		buf, _ := wire.AppendResponseFrame(nil, &wire.Response{Code: wire.CodeTooManyConnections,
			Msg: "this node is at its connection limit"})
		if _, err := nc.Write(buf); err != nil {
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		var sink [4096]byte
		for n := 0; n < 64<<10; {
			m, err := nc.Read(sink[:])
			if err != nil {
				return
			}
			n += m
		}
	}()
}

// admitPrincipal counts an authenticated connection against its tenant's
// cap and the node's. Operators pass as long as the connection was
// accepted (their reserve). It returns a refusal to send instead of the
// hello answer, or nil; release undoes the count.
func (s *Server) admitPrincipal(p *principal) (release func(), refusal *wire.Response) {
	if p.operator {
		return func() {}, nil
	}
	limit := s.cfg.MaxConnectionsPerTenant
	if t, err := s.tenantOfToken(p); err == nil && t.Limits.MaxConnections != 0 {
		limit = t.Limits.MaxConnections
	}
	l := &s.connLimits
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open > s.cfg.MaxConnections:
		l.refusedNode.Add(1)
		return nil, &wire.Response{Code: wire.CodeTooManyConnections,
			Msg: "this node is at its connection limit"}
	case uint64(l.byTenant[p.tenantID]) >= limit:
		l.refusedTenant.Add(1)
		return nil, &wire.Response{Code: wire.CodeTooManyConnections,
			Msg: fmt.Sprintf("the tenant has %d connections on this node, its limit", limit)}
	}
	l.byTenant[p.tenantID]++
	id := p.tenantID
	return func() {
		l.mu.Lock()
		if l.byTenant[id]--; l.byTenant[id] <= 0 {
			delete(l.byTenant, id)
		}
		l.mu.Unlock()
	}, nil
}

var (
	connsRefusedDesc = prometheus.NewDesc("tenantkv_connections_refused_total",
		"Client connections refused, by reason: node (MaxConnections) or tenant (per-tenant cap).", []string{"reason"}, nil)
	connsClosedDesc = prometheus.NewDesc("tenantkv_connections_closed_total",
		"Client connections the node closed, by reason: idle (IdleTimeout) or slow_reader (answers not read within WriteTimeout).", []string{"reason"}, nil)
	requestsRefusedMemDesc = prometheus.NewDesc("tenantkv_requests_refused_memory_total",
		"Requests refused because decoding them would take more than a connection's memory (MaxConnMemory).", nil, nil)
	memInFlightDesc = prometheus.NewDesc("tenantkv_memory_in_flight_bytes",
		"Bytes of requests and answers in flight, charged to the memory budget.", nil, nil)
	memBudgetDesc = prometheus.NewDesc("tenantkv_memory_budget_bytes",
		"The node's memory budget for requests and answers in flight (--memory-budget).", nil, nil)
	maxConnsDesc = prometheus.NewDesc("tenantkv_max_connections",
		"The node's cap on client connections (--max-connections).", nil, nil)
)

// connCollector exports the connection and memory limits' counters.
type connCollector struct{ s *Server }

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connsRefusedDesc, connsClosedDesc, requestsRefusedMemDesc, memInFlightDesc, memBudgetDesc, maxConnsDesc} {
		ch <- d
	}
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	l := &c.s.connLimits
	ch <- prometheus.MustNewConstMetric(connsRefusedDesc, prometheus.CounterValue, float64(l.refusedNode.Load()), "node")
	ch <- prometheus.MustNewConstMetric(connsRefusedDesc, prometheus.CounterValue, float64(l.refusedTenant.Load()), "tenant")
	ch <- prometheus.MustNewConstMetric(connsClosedDesc, prometheus.CounterValue, float64(l.closedIdle.Load()), "idle")
	ch <- prometheus.MustNewConstMetric(connsClosedDesc, prometheus.CounterValue, float64(l.closedSlow.Load()), "slow_reader")
	ch <- prometheus.MustNewConstMetric(requestsRefusedMemDesc, prometheus.CounterValue, float64(l.refusedDecode.Load()))
	ch <- prometheus.MustNewConstMetric(memInFlightDesc, prometheus.GaugeValue, float64(c.s.mem.inUse()))
	ch <- prometheus.MustNewConstMetric(memBudgetDesc, prometheus.GaugeValue, float64(c.s.cfg.MemoryBudget))
	ch <- prometheus.MustNewConstMetric(maxConnsDesc, prometheus.GaugeValue, float64(c.s.cfg.MaxConnections))
}
