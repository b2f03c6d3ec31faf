package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// Tokens look like "tkv_<id>_<secret>": the ID (16 hex characters) names the
// token record in the replicated system keyspace; only the SHA-256 of the
// whole token is stored. The ID is not secret: it is what `tenant tokens`
// lists and `tenant revoke` takes.
const tokenPrefix = "tkv_"

var errMalformedToken = errors.New("tenantkv: malformed token")

// newToken returns a fresh token, its ID and the hash to store.
func newToken() (secret, id string, hash []byte, err error) {
	var idb [8]byte
	var sb [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", nil, err
	}
	if _, err := rand.Read(sb[:]); err != nil {
		return "", "", nil, err
	}
	id = hex.EncodeToString(idb[:])
	secret = tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(sb[:])
	return secret, id, hashToken(secret), nil
}

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// tokenID extracts the ID part of a token without judging the secret.
func tokenID(secret string) (string, error) {
	rest, ok := strings.CutPrefix(secret, tokenPrefix)
	if !ok || len(rest) < 17 || rest[16] != '_' {
		return "", errMalformedToken
	}
	id := rest[:16]
	if _, err := hex.DecodeString(id); err != nil {
		return "", errMalformedToken
	}
	return id, nil
}

// dummyHash is compared against when no record exists, so that a missing
// token costs the same as a wrong one.
var dummyHash = hashToken("tkv_0000000000000000_dummy")

// tokenMatches compares the hash of secret with want in constant time.
func tokenMatches(secret string, want []byte) bool {
	if len(want) != sha256.Size {
		want = dummyHash
		subtle.ConstantTimeCompare(hashToken(secret), want)
		return false
	}
	return subtle.ConstantTimeCompare(hashToken(secret), want) == 1
}
