// Package testcluster is the one harness the tests of tenantkv start
// clusters with. It is for tests only: nothing outside _test.go files may
// import it.
//
// This package holds what every kind of cluster shares and imports neither
// server nor raft, so that any package's tests can use it, raft's own
// included: the seed of randomized tests (Seed, Rand), the raft timings of
// test clusters (HeartbeatTimeout and the rest), free loopback ports, waits
// (Poll), the -short rule for cluster tests (Short), and clusters of real
// `tenantkv serve` processes (Binary, Launch, Procs). Package
// testcluster/inproc runs clusters of server.Servers in the test's process.
package testcluster
