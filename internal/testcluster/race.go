//go:build race

package testcluster

// RaceEnabled: the tests run with the race detector; Binary builds with it
// too, so the build reuses the test's compiled packages.
const RaceEnabled = true
