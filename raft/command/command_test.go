package command

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
)

func ptr[T any](v T) *T { return &v }

// sampleCommands has one value of every command type, with every field set.
func sampleCommands() []Command {
	hash := sha256.Sum256([]byte("secret"))
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return []Command{
		&TenantWrite{TenantID: 7, TenantName: "acme", Ops: []Op{
			{Kind: OpSet, Key: []byte("k"), Value: []byte("v")},
			{Kind: OpDelete, Key: []byte("d")},
			{Kind: OpDeleteRange, Key: []byte("a"), End: []byte("b")},
		}},
		&CreateTenant{Name: "acme", Limits: keyspace.Limits{MaxBytes: 1 << 20, OpsPerSec: 100},
			Labels: map[string]string{"team": "x", "env": "prod"}, CreatedAt: created},
		&UpdateTenant{ID: 7, NewName: ptr("acme-2"), State: ptr(keyspace.StateReadOnly),
			Limits: &keyspace.Limits{MaxKeys: 9}, Labels: map[string]string{}},
		&DeleteTenant{ID: 7},
		&PutToken{Token: TokenRecord{ID: "tok1", Hash: hash[:], TenantID: 7, ReadOnly: true,
			ExpiresAt: created.Add(time.Hour), CreatedAt: created}},
		&DeleteToken{ID: "tok1"},
		&SetMember{NodeID: "n1", ClientAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"},
		&RemoveMember{NodeID: "n1"},
		&Noop{},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, cmd := range sampleCommands() {
		t.Run(typeName(cmd), func(t *testing.T) {
			require.NoError(t, cmd.Validate())
			b, err := Encode(cmd)
			require.NoError(t, err)
			require.Equal(t, byte(Version), b[0])
			require.Equal(t, byte(cmd.Type()), b[1])
			got, err := Decode(b)
			require.NoError(t, err)
			b2, err := Encode(got)
			require.NoError(t, err)
			require.Equal(t, b, b2, "re-encoding must give the same bytes")
			require.IsType(t, cmd, got)
		})
	}
}

func TestCommandEncodingDeterministic(t *testing.T) {
	labels := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		labels[k] = k + k
	}
	cmd := &CreateTenant{Name: "x", Labels: labels}
	first, err := Encode(cmd)
	require.NoError(t, err)
	for range 20 {
		b, err := Encode(cmd)
		require.NoError(t, err)
		require.Equal(t, first, b)
	}
}

func TestUpdateTenantLabelsNilVersusEmpty(t *testing.T) {
	for _, tc := range []struct {
		labels  map[string]string
		wantNil bool
	}{{nil, true}, {map[string]string{}, false}} {
		b, err := Encode(&UpdateTenant{ID: 1, Labels: tc.labels})
		require.NoError(t, err)
		got, err := Decode(b)
		require.NoError(t, err)
		require.Equal(t, tc.wantNil, got.(*UpdateTenant).Labels == nil)
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	good, err := Encode(&DeleteTenant{ID: 3})
	require.NoError(t, err)
	withField, err := Marshal(map[string]any{"id": 3, "surprise": 1})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrBadCommand},
		{"one byte", []byte{Version}, ErrBadCommand},
		{"unknown version", append([]byte{99}, good[1:]...), ErrUnknownCommand},
		{"version zero", append([]byte{0}, good[1:]...), ErrUnknownCommand},
		{"unknown type", append([]byte{Version, 200}, good[2:]...), ErrUnknownCommand},
		{"type zero", append([]byte{Version, 0}, good[2:]...), ErrUnknownCommand},
		{"truncated body", good[:len(good)-1], ErrBadCommand},
		{"trailing bytes", append(bytes.Clone(good), 0xc0), ErrBadCommand},
		{"not a map", []byte{Version, byte(TypeDeleteTenant), 0x01}, ErrBadCommand},
		{"unknown field", append([]byte{Version, byte(TypeDeleteTenant)}, withField...), ErrBadCommand},
		{"nil time", append([]byte{Version, byte(TypeCreateTenant)}, mustMarshal(t, map[string]any{"created": nil})...), ErrBadCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	b, err := Marshal(v)
	require.NoError(t, err)
	return b
}

func TestCommandValidate(t *testing.T) {
	big := make([]byte, keyspace.MaxValueSize+1)
	for _, tc := range []struct {
		name string
		cmd  Command
		want error
	}{
		{"write bad id", &TenantWrite{TenantID: 0}, keyspace.ErrInvalidID},
		{"empty key", &TenantWrite{TenantID: 1, Ops: []Op{{Kind: OpSet}}}, keyspace.ErrInvalidKey},
		{"value too large", &TenantWrite{TenantID: 1, Ops: []Op{{Kind: OpSet, Key: []byte("k"), Value: big}}}, keyspace.ErrValueTooLarge},
		{"bad range", &TenantWrite{TenantID: 1, Ops: []Op{{Kind: OpDeleteRange, Key: []byte("b"), End: []byte("a")}}}, keyspace.ErrInvalidRange},
		{"unknown op", &TenantWrite{TenantID: 1, Ops: []Op{{Kind: 9, Key: []byte("k")}}}, ErrBadCommand},
		{"delete with value", &TenantWrite{TenantID: 1, Ops: []Op{{Kind: OpDelete, Key: []byte("k"), Value: []byte("v")}}}, ErrBadCommand},
		{"bad name", &CreateTenant{Name: "Bad_Name"}, keyspace.ErrInvalidName},
		{"bad rename", &UpdateTenant{ID: 1, NewName: ptr("")}, keyspace.ErrInvalidName},
		{"bad state", &UpdateTenant{ID: 1, State: ptr(keyspace.State(9))}, keyspace.ErrInvalidState},
		{"short hash", &PutToken{Token: TokenRecord{ID: "x", Hash: []byte{1}}}, ErrBadCommand},
		{"empty token id", &DeleteToken{}, ErrBadCommand},
		{"empty member", &SetMember{}, ErrBadCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.cmd.Validate(), tc.want)
		})
	}
}

// FuzzDecodeCommand checks that no input makes Decode panic, and that
// whatever decodes re-encodes to an entry that decodes the same way.
func FuzzDecodeCommand(f *testing.F) {
	for _, cmd := range sampleCommands() {
		b, err := Encode(cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{Version, byte(TypeCreateTenant), 0x81, 0xa7, 'c', 'r', 'e', 'a', 't', 'e', 'd', 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		_ = cmd.Validate()
		b2, err := Encode(cmd)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := Decode(b2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func typeName(c Command) string {
	switch c.(type) {
	case *TenantWrite:
		return "TenantWrite"
	case *CreateTenant:
		return "CreateTenant"
	case *UpdateTenant:
		return "UpdateTenant"
	case *DeleteTenant:
		return "DeleteTenant"
	case *PutToken:
		return "PutToken"
	case *DeleteToken:
		return "DeleteToken"
	case *SetMember:
		return "SetMember"
	case *RemoveMember:
		return "RemoveMember"
	case *Noop:
		return "Noop"
	}
	return "unknown"
}
