//go:build tenantkvfaults

package main

import (
	"os"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/server"
)

// Fault hooks of test builds (go build -tags tenantkvfaults), for end-to-end
// tests that need a node to hang where no outside action can make it hang.
// A release binary does not contain this file.
//
// TENANTKV_FAULT_STALL_FILE=PATH and TENANTKV_FAULT_STALL=D: while the file
// PATH exists, every write of new raft log entries first waits D (or until
// the file is removed), as on a disk that stopped answering: the apply of
// the entries behind it, and raft's shutdown, wait with it.
func init() {
	serveTestHooks = append(serveTestHooks, func(cfg *server.Config) {
		path := os.Getenv("TENANTKV_FAULT_STALL_FILE")
		d, err := time.ParseDuration(os.Getenv("TENANTKV_FAULT_STALL"))
		if path == "" || err != nil {
			return
		}
		var logged atomic.Bool
		cfg.LogFaults = func(op raft.LogOp) error {
			if op.Kind != raft.LogOpStore || op.Done {
				return nil
			}
			if _, err := os.Stat(path); err != nil {
				return nil
			}
			if !logged.Swap(true) {
				cfg.Logger.Warn("fault hook: stalling raft log writes", "for", d, "while", path)
			}
			for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(path); err != nil {
					break
				}
			}
			return nil
		}
	})
}
