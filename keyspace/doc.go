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
//	0xFF 'm' ...                  cluster metadata
//
// # Names
//
// Tenant names follow DNS label rules: 1 to 63 characters of a-z, 0-9 and
// '-', neither starting nor ending with '-'.
package keyspace
