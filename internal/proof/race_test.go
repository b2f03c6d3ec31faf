//go:build race

package proof

// raceEnabled: the tests run with the race detector, and so does the binary
// the process tests build, which then reuses the compiled packages.
const raceEnabled = true
