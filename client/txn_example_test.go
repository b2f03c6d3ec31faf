package client_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"

	"github.com/tenantkv/tenantkv/client"
)

// Update runs a read-modify-write transaction, retried on conflicts: here
// it moves stock between two keys and counts the move with an atomic Add.
func ExampleTenant_Update() {
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
	if err := t.Set(ctx, []byte("stock/a"), []byte("5")); err != nil {
		log.Fatal(err)
	}

	err = t.Update(ctx, func(tx *client.Tx) error {
		a, err := tx.Get(ctx, []byte("stock/a"))
		if err != nil {
			return err
		}
		if string(a) == "0" {
			return fmt.Errorf("out of stock")
		}
		tx.Set([]byte("stock/a"), []byte("4"))
		tx.Set([]byte("stock/b"), []byte("1"))
		tx.Add([]byte("moves"), 1) // no read conflict: concurrent moves never conflict here
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	for kv, err := range t.Range(ctx, client.Prefix([]byte("stock/")), nil) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s=%s\n", kv.Key, kv.Value)
	}
	moves, err := t.Get(ctx, []byte("moves"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("moves:", binary.LittleEndian.Uint64(moves))
	// Output:
	// stock/a=4
	// stock/b=1
	// moves: 1
}

// Watch delivers every change of a key after a version, in order.
func ExampleTenant_Watch() {
	addr, opToken, stop := startExampleNode()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := client.Open(ctx, []string{addr}, &client.Options{Token: opToken})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateTenant(ctx, "app", nil); err != nil {
		log.Fatal(err)
	}
	t := db.Tenant("app")
	from, err := t.ReadVersion(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"on", "off"} {
		if err := t.Set(ctx, []byte("flag"), []byte(v)); err != nil {
			log.Fatal(err)
		}
	}
	if err := t.Delete(ctx, []byte("flag")); err != nil {
		log.Fatal(err)
	}
	n := 0
	for ev, err := range t.Watch(ctx, client.WatchOptions{Key: []byte("flag"), FromVersion: from}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Version-from, ev.Kind, string(ev.Key), string(ev.Value))
		if n++; n == 3 {
			break
		}
	}
	// Output:
	// 1 set flag on
	// 2 set flag off
	// 3 delete flag
}
