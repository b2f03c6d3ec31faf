// Package fsm is tenantkv's replicated state machine: it applies committed
// raft log entries (package command) to the store, deterministically, and
// answers reads of the state it keeps.
//
// A Machine owns the tenant catalog (tenants, names, tokens, members),
// storage quotas, tenant versions and write history, and the conflict
// checks of transactions. ApplyBatch applies a batch of entries as one
// store batch, committed together with the index of its last entry, so a
// restart resumes exactly after it; a refused command is a result, the same
// on every replica, and writes nothing; a storage failure stops the machine
// instead of letting the replica diverge. Snapshot and Restore move the
// whole state. The read helpers (LookupTenant, Token, TenantVersion,
// ChangesAs, Usage, ...) serve the server from an in-memory catalog.
//
// The package never imports hashicorp/raft: package raft adapts it to the
// raft library, and tests feed it entries directly. See DESIGN.md.
package fsm
