// Package proof holds the tests that check what tenantkv promises rather
// than how it is built: linearizability under faults, hostile input at the
// protocol, tenant isolation under attack, and data integrity under load.
// docs/RELIABILITY.md says what each test proves and how to run it.
//
// # Layout
//
// The package's only non-test code is Network, a fault-injecting TCP proxy
// that sits in front of every node's raft address (the node advertises the
// proxy as its raft address) and can cut or delay the traffic between any
// two nodes. Everything else lives in _test.go files:
//
//   - cluster_test.go starts in-process nodes (server.Start) over real TCP on
//     127.0.0.1 and kills, restarts and partitions them; network_test.go
//     checks the proxy on its own.
//   - history_test.go records operations and checks them per tenant and key
//     with porcupine; a failing history is saved as porcupine's HTML
//     visualisation under testdata/failures/ and the path is printed.
//   - linearizability_test.go and process_test.go run clients against a
//     cluster while a nemesis injects faults (in-process nodes; and real
//     `tenantkv serve` processes paused with SIGSTOP and killed with SIGKILL).
//   - disk_test.go fills a node's disk (RLIMIT_FSIZE) and checks that no
//     acknowledged write is lost.
//   - hostile_test.go, isolation_test.go and load_test.go attack the protocol,
//     the tenant boundary and the data under load; token_test.go and
//     recreate_test.go pin two bugs they found.
//   - soak_test.go (build tag soak) loops every scenario for
//     TENANTKV_SOAK_DURATION and prints a summary.
//
// # Running
//
// `go test -race ./internal/proof` runs the short versions (part of
// `make test`); `go test -tags soak -run Soak -timeout 0 ./internal/proof`
// runs the long ones.
package proof
