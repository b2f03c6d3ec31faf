//go:build !race

package testcluster

// RaceEnabled: the tests run with the race detector.
const RaceEnabled = false
