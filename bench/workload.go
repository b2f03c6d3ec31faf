package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// Workload names a mix of operations in the YCSB tradition.
type Workload string

// The workloads. Reads are Get, updates Set an existing key, scans read 1 to
// Config.MaxScan keys from a chosen key on.
const (
	WorkloadA Workload = "A" // update heavy: 50% reads, 50% updates
	WorkloadB Workload = "B" // read mostly: 95% reads, 5% updates
	WorkloadC Workload = "C" // read only
	WorkloadE Workload = "E" // short ranges: 95% scans, 5% updates
	WorkloadW Workload = "W" // write only
)

// Mix is the share of each operation in a workload; the shares add up to 1.
type Mix struct {
	Read, Update, Scan float64
}

// Mix returns the operation mix of w, or an error for an unknown workload.
func (w Workload) Mix() (Mix, error) {
	switch w {
	case WorkloadA:
		return Mix{Read: 0.5, Update: 0.5}, nil
	case WorkloadB:
		return Mix{Read: 0.95, Update: 0.05}, nil
	case WorkloadC:
		return Mix{Read: 1}, nil
	case WorkloadE:
		return Mix{Scan: 0.95, Update: 0.05}, nil
	case WorkloadW:
		return Mix{Update: 1}, nil
	}
	return Mix{}, fmt.Errorf("bench: unknown workload %q (want one of A, B, C, E, W)", string(w))
}

// ParseWorkload accepts a workload name in either case.
func ParseWorkload(s string) (Workload, error) {
	w := Workload(strings.ToUpper(s))
	if _, err := w.Mix(); err != nil {
		return "", err
	}
	return w, nil
}

// OpKind is one kind of operation.
type OpKind uint8

// The operation kinds.
const (
	OpRead OpKind = iota
	OpUpdate
	OpScan
	numOpKinds
)

// String returns "read", "update" or "scan".
func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpUpdate:
		return "update"
	case OpScan:
		return "scan"
	}
	return "op" + strconv.Itoa(int(k))
}

// pick chooses an operation for a uniform u in [0, 1).
func (m Mix) pick(u float64) OpKind {
	switch {
	case u < m.Read:
		return OpRead
	case u < m.Read+m.Update:
		return OpUpdate
	}
	return OpScan
}

// Distribution is how keys or tenants are chosen.
type Distribution string

// The distributions. Zipfian uses ZipfianConstant and spreads the popular
// items over the whole range.
const (
	Uniform Distribution = "uniform"
	Zipf    Distribution = "zipfian"
)

// ParseDistribution accepts "uniform" or "zipfian" (or "zipf").
func ParseDistribution(s string) (Distribution, error) {
	switch strings.ToLower(s) {
	case "uniform":
		return Uniform, nil
	case "zipfian", "zipf":
		return Zipf, nil
	}
	return "", fmt.Errorf("bench: unknown distribution %q (want uniform or zipfian)", s)
}

// Limits of a Config.
const (
	MaxTenants = 1_000_000
	MaxClients = 10_000
	// maxKeyBytes bounds the memory of the pre-generated keys.
	maxKeyBytes = 1 << 30
)

// Config describes one workload run. The zero value of every field but
// Workload means its default; Validate reports values that cannot work.
type Config struct {
	// Name labels the run in reports; empty means one made of the other
	// fields.
	Name string
	// Series groups runs of a scenario that a chart draws as one line.
	Series string
	// Workload is the operation mix; empty means A.
	Workload Workload
	// Keys is the number of keys over all tenants; each tenant has
	// Keys/Tenants of them (at least one). Default 100,000.
	Keys int
	// KeySize is the length of every key in bytes. Default 16.
	KeySize int
	// ValueSize is the length of every value written in bytes. Default 128.
	ValueSize int
	// Tenants is the number of tenants, 1 to MaxTenants. Default 1.
	Tenants int
	// TenantPrefix starts every tenant name; tenant i is the prefix and i
	// in six or more digits. Default "bench-".
	TenantPrefix string
	// TenantSkew chooses the tenant of each operation. Default uniform.
	TenantSkew Distribution
	// KeyDist chooses the key of each operation. Default uniform.
	KeyDist Distribution
	// Clients is the number of goroutines issuing operations, each one at
	// a time (a closed loop). Default 16.
	Clients int
	// Conns is the number of client.DB instances the clients share round
	// robin; connection i starts at endpoint i mod len(endpoints). Default
	// min(Clients, 4).
	Conns int
	// Duration is how long the measured phase lasts. Zero with Ops set
	// means until Ops operations are done; zero with Ops zero means 10s.
	Duration time.Duration
	// Ops stops the measured phase after this many operations (not
	// counting the warm-up); zero means no limit.
	Ops int64
	// Warmup runs the workload this long before measuring; its operations
	// are not in the report. Negative means none; zero means 2s.
	Warmup time.Duration
	// SkipCreate assumes the tenants exist instead of creating them.
	SkipCreate bool
	// SkipLoad skips the load phase, which writes every key once before
	// the run so that reads find them.
	SkipLoad bool
	// LoadConcurrency is the number of writes in flight while loading and
	// creating tenants. Default 128.
	LoadConcurrency int
	// TenantConfig configures the tenants created; nil means defaults.
	TenantConfig *client.TenantConfig
	// Stale makes reads and scans stale reads, which any node may answer.
	Stale bool
	// MaxScan is the longest scan of workload E; its length is uniform in
	// [1, MaxScan]. Default 100.
	MaxScan int
	// Seed makes the run's choices reproducible. Default 1.
	Seed uint64
	// TopTenants is how many tenants the per-tenant breakdown lists.
	// Default 10; negative means none.
	TopTenants int
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Workload == "" {
		c.Workload = WorkloadA
	}
	def(&c.Keys, 100_000)
	def(&c.KeySize, 16)
	def(&c.ValueSize, 128)
	def(&c.Tenants, 1)
	def(&c.Clients, 16)
	def(&c.Conns, min(c.Clients, 4))
	def(&c.LoadConcurrency, 128)
	def(&c.MaxScan, 100)
	def(&c.TopTenants, 10)
	if c.TenantPrefix == "" {
		c.TenantPrefix = "bench-"
	}
	if c.TenantSkew == "" {
		c.TenantSkew = Uniform
	}
	if c.KeyDist == "" {
		c.KeyDist = Uniform
	}
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Name == "" {
		c.Name = c.defaultName()
	}
	return c
}

func (c Config) defaultName() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", c.Workload, plural(c.Tenants, "tenant"))
	if c.KeyDist == Zipf {
		b.WriteString(" zipfian keys")
	}
	if c.TenantSkew == Zipf && c.Tenants > 1 {
		b.WriteString(" zipfian tenants")
	}
	fmt.Fprintf(&b, " %s", plural(c.Clients, "client"))
	if c.Stale {
		b.WriteString(" stale")
	}
	return b.String()
}

// plural formats n and a noun, adding an s when n is not 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Validate reports a configuration that cannot run. Zero fields are valid:
// they mean defaults.
func (c Config) Validate() error {
	if c.Workload != "" {
		if _, err := c.Workload.Mix(); err != nil {
			return err
		}
	}
	for _, d := range []Distribution{c.TenantSkew, c.KeyDist} {
		if d != "" && d != Uniform && d != Zipf {
			return fmt.Errorf("bench: unknown distribution %q", string(d))
		}
	}
	switch {
	case c.Keys < 0, c.KeySize < 0, c.ValueSize < 0, c.Tenants < 0, c.Clients < 0,
		c.Conns < 0, c.Duration < 0, c.Ops < 0, c.LoadConcurrency < 0, c.MaxScan < 0:
		return errors.New("bench: negative size, count or duration")
	case c.Tenants > MaxTenants:
		return fmt.Errorf("bench: %d tenants, at most %d", c.Tenants, MaxTenants)
	case c.Clients > MaxClients:
		return fmt.Errorf("bench: %d clients, at most %d", c.Clients, MaxClients)
	case c.ValueSize > client.MaxValueSize:
		return fmt.Errorf("bench: value size %d over the limit of %d", c.ValueSize, client.MaxValueSize)
	case c.KeySize > client.MaxKeySize:
		return fmt.Errorf("bench: key size %d over the limit of %d", c.KeySize, client.MaxKeySize)
	}
	d := c.withDefaults()
	if d.Conns > d.Clients {
		return fmt.Errorf("bench: %d connections for %d clients", d.Conns, d.Clients)
	}
	kpt := d.keysPerTenant()
	if need := len(strconv.Itoa(kpt-1)) + 1; d.KeySize < need {
		return fmt.Errorf("bench: key size %d too small for %d keys per tenant (need %d bytes)", d.KeySize, kpt, need)
	}
	if kpt*d.KeySize > maxKeyBytes {
		return fmt.Errorf("bench: %d keys of %d bytes per tenant do not fit in memory", kpt, d.KeySize)
	}
	if len(d.TenantPrefix)+max(6, len(strconv.Itoa(d.Tenants-1))) > 63 {
		return fmt.Errorf("bench: tenant prefix %q too long", d.TenantPrefix)
	}
	return nil
}

// keysPerTenant is the number of keys each tenant holds.
func (c Config) keysPerTenant() int {
	return max(1, (c.Keys+c.Tenants-1)/c.Tenants)
}

// TenantName returns the name of tenant i of a run with the given prefix.
func TenantName(prefix string, i int) string {
	return fmt.Sprintf("%s%06d", prefix, i)
}

// Key returns key i of a tenant: 'k' and i in decimal, padded with zeros to
// size bytes, so that keys sort in index order.
func Key(i, size int) []byte {
	digits := strconv.Itoa(i)
	k := make([]byte, size)
	k[0] = 'k'
	pad := size - 1 - len(digits)
	for j := 1; j <= pad; j++ {
		k[j] = '0'
	}
	copy(k[1+max(pad, 0):], digits)
	return k
}

// keySpace is what every client of a run shares, generated before the run
// so that the measured loop only picks: the keys of a tenant (the same user
// keys in every tenant), one value, the tenant names and the choosers. It is
// immutable once built.
type keySpace struct {
	mix     Mix
	keys    [][]byte
	value   []byte
	tenants []string
	keyDist chooser
	tenDist chooser
	maxScan int
}

func newKeySpace(c Config) (*keySpace, error) {
	mix, err := c.Workload.Mix()
	if err != nil {
		return nil, err
	}
	kpt := c.keysPerTenant()
	ks := &keySpace{
		mix:     mix,
		keys:    make([][]byte, kpt),
		tenants: make([]string, c.Tenants),
		keyDist: newChooser(c.KeyDist, uint64(kpt)),
		tenDist: newChooser(c.TenantSkew, uint64(c.Tenants)),
		maxScan: c.MaxScan,
	}
	buf := make([]byte, kpt*c.KeySize) // one allocation for every key
	for i := range ks.keys {
		k := buf[i*c.KeySize : (i+1)*c.KeySize : (i+1)*c.KeySize]
		copy(k, Key(i, c.KeySize))
		ks.keys[i] = k
	}
	for i := range ks.tenants {
		ks.tenants[i] = TenantName(c.TenantPrefix, i)
	}
	// Random bytes, so that compression in the store does not flatter it.
	rng := rand.New(rand.NewPCG(c.Seed, 0x76616c7565))
	ks.value = make([]byte, c.ValueSize)
	for i := range ks.value {
		ks.value[i] = byte(rng.Uint32())
	}
	return ks, nil
}

// chooser draws item indexes in [0, n) by a distribution.
type chooser struct {
	n    uint64
	zipf *Zipfian // nil: uniform
	sc   scatter
}

func newChooser(d Distribution, n uint64) chooser {
	c := chooser{n: max(n, 1)}
	if d == Zipf && n > 1 {
		c.zipf = NewZipfian(n, ZipfianConstant)
		c.sc = newScatter(n)
	}
	return c
}

func (c *chooser) next(rng *rand.Rand) uint64 {
	if c.zipf == nil {
		return rng.Uint64N(c.n)
	}
	return c.sc.at(c.zipf.Next(rng))
}
