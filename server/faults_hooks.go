//go:build tenantkvfaults

package server

import (
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/store"
)

// Fault hooks of test builds (go build -tags tenantkvfaults), for end-to-end
// tests of the real binary that need a node to hang where no outside action
// can make it hang. Start applies them to every node's configuration; a
// release build does not contain this file.
//
// TENANTKV_FAULT_STALL_FILE=PATH, TENANTKV_FAULT_STALL=D and
// TENANTKV_FAULT_STALL_AT=WHERE: while the file PATH exists, every write at
// WHERE first waits D (or until the file is removed), as on a disk that
// stopped answering. WHERE is raft-log (the default: raft's writes of new
// log entries, so the entries behind them are never applied) or store-wal
// (the store's write-ahead log, so the apply in progress hangs in its
// commit once the log's buffers are full).
func init() {
	testHooks = append(testHooks, func(cfg *Config) {
		path := os.Getenv("TENANTKV_FAULT_STALL_FILE")
		d, err := time.ParseDuration(os.Getenv("TENANTKV_FAULT_STALL"))
		if path == "" || err != nil {
			return
		}
		var logged atomic.Bool
		stall := func(what string) {
			if _, err := os.Stat(path); err != nil {
				return
			}
			if !logged.Swap(true) {
				cfg.Logger.Warn("fault hook: stalling "+what, "for", d, "while", path)
			}
			for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(path); err != nil {
					return
				}
			}
		}
		switch os.Getenv("TENANTKV_FAULT_STALL_AT") {
		case "store-wal":
			cfg.StoreFaults = func(op store.FileOp, p string) error {
				if op == store.FileWrite && strings.HasSuffix(p, ".log") {
					stall("store WAL writes")
				}
				return nil
			}
		default:
			cfg.LogFaults = func(op raft.LogOp) error {
				if op.Kind == raft.LogOpStore && !op.Done {
					stall("raft log writes")
				}
				return nil
			}
		}
	})
}
