package store

import (
	"encoding/binary"
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
	applied := keyspace.AppliedIndexKey().Bytes()
	h := crc64.New(crcISO)
	var n [binary.MaxVarintLen64]byte
	for ok := it.First(); ok; ok = it.Next() {
		if string(it.Key()) == string(applied) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(it.Key())))])
		h.Write(it.Key())
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write(v)
	}
	return h.Sum64(), it.Error()
}
