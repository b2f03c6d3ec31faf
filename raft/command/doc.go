// Package command defines tenantkv's raft log entries: every command type,
// its fields, its stateless validation and its encoding. It is the log
// format and nothing else: it applies nothing, reads no state and imports
// neither raft nor the store.
//
// An entry is an envelope, a version byte and a type byte, then the
// command's body (msgpack, or the hand-written encoding of TenantWrite
// that produces the same bytes). Encode and Decode are the only ways in
// and out; Decode never panics and refuses what it does not know with
// ErrUnknownCommand or ErrBadCommand. A batch entry (TypeBatch) frames many
// encoded commands as one entry. The golden files under testdata pin the
// bytes of every type; see DESIGN.md for the rules that keep old entries
// readable.
package command
