// Package server is a tenantkv node: it accepts client connections,
// authenticates them, resolves tenant names through the replicated tenant
// map, sends writes through raft and serves reads from the store.
//
// # Isolation
//
// A connection authenticates once, with a token. A tenant token reaches only
// its own tenant: a request naming any other tenant is refused with
// ErrPermissionDenied whether that tenant exists or not, so the answer is no
// existence oracle. The tenant ID a write carries is checked again by the FSM
// at apply time, and every read goes through a store view bound to the
// resolved ID, so a bug here still cannot reach another tenant's keys.
//
// # Peers
//
// The raft port writes the replicated state, so it is authenticated too:
// with peer TLS (Config.PeerTLSCertFile and friends) raft is mutual TLS with
// the cluster CA and a join is admitted only for a raft address holding a
// certificate of it; without, Start refuses a raft address that is not
// loopback unless Config.InsecurePeers (peers.go).
//
// # Before authentication
//
// Until a connection has authenticated it hears only fixed answers
// (hello.go): every bad token gets the same frame on every node, and no
// answer carries a raft index, an address or a count. A follower that
// refuses a token asks the leader, so that an unknown token ID and a known
// one with a wrong secret are refused alike. The HTTP address names no
// tenant in /metrics without an operator token (or MetricsTenantLabels),
// and serves /debug only with Debug.
//
// # Concurrency
//
// Each connection has a reader goroutine, a writer goroutine that coalesces
// responses, and one goroutine per request in flight (at most 256 per
// connection). Responses are matched to requests by ID and may arrive in
// any order.
package server
