// Package wire is the tenantkv client protocol: length-prefixed frames with
// msgpack bodies, the request and response messages, and the stable numeric
// error codes. It is the only package that frames msgpack for the network;
// both server and client use it. docs/PROTOCOL.md describes the same thing for
// people writing other clients.
//
// # Frames
//
// A frame is a 4-byte big-endian body length followed by the body. The length
// is checked against a maximum before anything is allocated.
//
// # Concurrency
//
// The encoding functions are safe for concurrent use. A FrameReader is not.
package wire
