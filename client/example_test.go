package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/server"
)

// startExampleNode starts a real single-node cluster in a temporary
// directory and returns its address, its operator token and a stop function.
func startExampleNode() (addr, token string, stop func()) {
	dir, err := os.MkdirTemp("", "tenantkv-example-")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, server.Config{
		DataDir: dir, ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		Raft: server.RaftTuning{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond},
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, server.OperatorTokenFile))
	if err != nil {
		log.Fatal(err)
	}
	return s.Addr(), strings.TrimSpace(string(tok)), func() { s.Close(); os.RemoveAll(dir) }
}

// An operator creates a tenant and hands a token to the application, which
// then reads and writes its own keys.
func Example() {
	addr, opToken, stop := startExampleNode()
	defer stop()
	ctx := context.Background()

	admin, err := client.Open(ctx, []string{addr}, &client.Options{Token: opToken})
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.CreateTenant(ctx, "acme", nil); err != nil {
		log.Fatal(err)
	}
	tok, err := admin.NewTenantToken(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}

	db, err := client.Open(ctx, []string{addr}, &client.Options{Token: tok})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	t := db.Tenant("acme")
	if err := t.Set(ctx, []byte("greeting"), []byte("hello")); err != nil {
		log.Fatal(err)
	}
	v, err := t.Get(ctx, []byte("greeting"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(v))

	_, err = t.Get(ctx, []byte("missing"))
	fmt.Println(errors.Is(err, client.ErrNotFound))

	// The token reaches only its own tenant.
	_, err = db.Tenant("globex").Get(ctx, []byte("greeting"))
	fmt.Println(errors.Is(err, client.ErrPermissionDenied))
	// Output:
	// hello
	// true
	// true
}

// Range walks keys in order, paging lazily; breaking out of the loop stops
// the paging.
func ExampleTenant_Range() {
	addr, opToken, stop := startExampleNode()
	defer stop()
	ctx := context.Background()
	db, err := client.Open(ctx, []string{addr}, &client.Options{Token: opToken})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateTenant(ctx, "shop", nil); err != nil {
		log.Fatal(err)
	}
	t := db.Tenant("shop")
	for _, k := range []string{"item/apple", "item/banana", "item/cherry", "order/1"} {
		if err := t.Set(ctx, []byte(k), []byte("x")); err != nil {
			log.Fatal(err)
		}
	}
	for kv, err := range t.Range(ctx, client.Prefix([]byte("item/")), &client.RangeOptions{Reverse: true}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(kv.Key))
	}
	// Output:
	// item/cherry
	// item/banana
	// item/apple
}
