// Package keyspace owns the physical key layout of tenantkv.
//
// It is the only package that builds or parses physical (engine) keys. Every
// other package speaks in tenant IDs and user keys, and asks keyspace to turn
// them into bytes on disk.
//
// # Layout
//
// A tenant's keys live under an 8-byte big-endian prefix made from its ID:
//
//	physical = BE64(tenantID) || userKey
//
// The tenant's span is [prefix, prefixEnd), where prefixEnd is the prefix of
// ID+1. Tenant IDs never start with the byte 0xFF, so the system keyspace,
// which starts with 0xFF, can never overlap a tenant span.
//
//	0xFF 'a'                      applied raft index
//	0xFF 'n'                      next tenant ID to allocate
//	0xFF 't' BE64(id)             tenant record
//	0xFF 'N' name                 tenant name index -> BE64(id)
//	0xFF 'k' tokenID              token record
//	0xFF 'm' name                 cluster metadata
//	0xFF 'm' "member/" nodeID     replicated metadata of a raft member
//	0xFF 'u' BE64(id) ...         per-tenant metadata kept by the state machine:
//	    "usage"                       usage counters
//	    "ver"                         version state
//	    "log/" BE64(ver) BE32(chunk)  chunk of the write history entry at ver
//
// Every per-tenant record of tenant id lies in TenantMetaSpan(id), and the
// spans of two tenants never overlap; store reaches them only through a
// view made from the tenant's ID (store.TenantMetaView), which checks every
// key against that span. A tenant's history keys sort by version, then by
// chunk, so HistorySpan(id, after, upTo) is one contiguous range.
//
// A SystemKey can only be made here: its bytes are unexported, and the
// constructors above are the only way to get one. No other package does
// arithmetic on physical keys (appending a byte to find a successor,
// slicing a prefix off to parse one); it asks for a span or a parser here
// (TenantNamesAfter, TenantNameOf, HistorySpan, MemberSpan).
//
// # Names
//
// Tenant names follow DNS label rules: 1 to 63 characters of a-z, 0-9 and
// '-', neither starting nor ending with '-'.
package keyspace
