// Package client is the Go library applications embed to use a tenantkv
// cluster: an ordered key-value store in which every tenant lives in its own
// key subspace.
//
//	db, err := client.Open(ctx, []string{"127.0.0.1:7400"}, &client.Options{Token: tok})
//	if err != nil { … }
//	defer db.Close()
//	t := db.Tenant("acme")
//	err = t.Set(ctx, []byte("k"), []byte("v"))
//	v, err := t.Get(ctx, []byte("k"))
//	for kv, err := range t.Range(ctx, client.Prefix([]byte("user/")), nil) { … }
//
// # Tenants and tokens
//
// A tenant token reaches exactly one tenant; an operator token can also
// create, list and delete tenants, mint tokens and manage cluster members.
// Keys are relative to the tenant: the same key in two tenants is two keys,
// and no handle can reach another tenant's keys. DB.Identity tells which kind
// of token the DB holds.
//
// # Managing tenants
//
// With an operator token, a DB manages tenants: CreateTenant (with limits
// and labels), TenantInfo (state, limits, labels, exact usage; a tenant
// token may ask about its own tenant), ListTenants or ListTenantsPage (paged,
// filtered by state), UpdateTenant (state "active", "suspended" or "locked",
// limits, labels), RenameTenant (the ID, keys and tokens stay) and
// DeleteTenant; the lifecycle: ActivateTenant, SuspendTenant, CancelTenant
// and RestoreTenant, and CreateTenant with TenantConfig.Trial. Tokens: NewToken (bound to a tenant, or a new operator token;
// read-only and expiring ones too), ListTokens and RevokeToken, whose effect
// reaches connections already open.
//
// # Batches
//
// Tenant.NewBatch collects sets, deletes and range deletes and Batch.Commit
// applies them atomically in one replicated write, up to MaxBatchSize bytes.
// A storage quota is checked against the batch as a whole.
//
// # Export and import
//
// DB.ExportTenant writes a consistent snapshot of a tenant, its record and
// every pair, in a documented, checksummed file format (ExportWriter,
// ExportReader; docs/OPERATIONS.md). DB.ImportTenant verifies such a file
// completely before it writes anything, then loads it into a new or empty
// tenant, on this cluster or another.
//
// # Connections and leaders
//
// A DB keeps at most one TCP (or TLS) connection per node and sends any number
// of concurrent requests over it; answers are matched by request ID and may
// come in any order. Writes, administration and linearizable reads go to the
// leader. The client finds it by itself: a follower's "not leader" answer
// names the leader, which is dialled even if it was not among the endpoints
// given to Open. While no leader is known the client retries other endpoints
// with a short backoff (20ms doubling to 500ms) until the call's context ends.
// A broken connection is redialled on next use.
//
// # Errors and retries
//
// Errors match the package's sentinels with errors.Is (ErrNotFound,
// ErrTenantNotFound, ErrPermissionDenied, …); a server's answer is an *Error
// carrying its code, message and retry hint. The client retries on its own
// only what provably never reached a server: redirects, "unavailable"
// answers, failed dials and requests whose frame was never written. Reads are
// also retried after a connection broke. A write whose connection broke after
// it was sent, or whose context ended while it was in flight, fails with an
// error matching ErrCommitUnknown: it may or may not have been applied, and
// the caller must find out by reading (or make the write idempotent).
//
// # Consistency
//
// Reads are linearizable by default: the leader confirms its leadership with
// a quorum before answering, so a read sees every write acknowledged before
// it started. A handle from Tenant.WithStaleReads, or RangeOptions.Stale,
// lets any node answer from its local state, which may lag. A Range of more
// than one page (RangeOptions.PageSize) is not one snapshot: each page is
// consistent, but writes between round trips may show up in later pages.
//
// # Ownership
//
// Every slice the client returns (values, keys of a Range) belongs to the
// caller, who may keep and modify it. Slices passed in (keys, values, range
// bounds) are not kept after the call returns; a Range's bounds are read
// while the loop runs.
//
// # Concurrency
//
// DB and Tenant are safe for concurrent use by any number of goroutines and
// are meant to be shared; Tenant handles are cheap and need no closing. The
// sequence Range returns must be consumed by one goroutine at a time. Close
// ends calls in flight with ErrClosed and waits for the client's goroutines.
package client
