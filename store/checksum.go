package store

import (
	"encoding/binary"
	"hash"
	"hash/crc64"

	"github.com/tenantkv/tenantkv/keyspace"
)

var crcISO = crc64.MakeTable(crc64.ECMA)

// Checksum returns a digest of every key and value in the store, tenants and
// system keyspace alike, except the applied index (which replicas reach at
// different moments). Replicas that applied the same log have equal checksums.
func (s *Store) Checksum() (uint64, error) {
	sn := s.NewSnapshot()
	defer sn.Close()
	return sn.Checksum()
}

// Checksum is Store.Checksum at the snapshot.
func (sn *Snapshot) Checksum() (uint64, error) {
	it, err := sn.s.NewIter(&pebbleIterAll)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	h := newChecksum()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		h.add(it.Key(), v)
	}
	return h.sum(), it.Error()
}

// checksum computes Checksum's digest over records given in key order.
type checksum struct {
	h       hash.Hash64
	applied []byte
	n       [binary.MaxVarintLen64]byte
}

func newChecksum() *checksum {
	return &checksum{h: crc64.New(crcISO), applied: keyspace.AppliedIndexKey().Bytes()}
}

// add digests one record, unless it is the applied index.
func (c *checksum) add(k, v []byte) {
	if string(k) == string(c.applied) {
		return
	}
	c.h.Write(c.n[:binary.PutUvarint(c.n[:], uint64(len(k)))])
	c.h.Write(k)
	c.h.Write(c.n[:binary.PutUvarint(c.n[:], uint64(len(v)))])
	c.h.Write(v)
}

func (c *checksum) sum() uint64 { return c.h.Sum64() }
