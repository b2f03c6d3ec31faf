// Command tenantkv is the one binary of tenantkv: it runs a node and talks
// to a cluster. Run `tenantkv help` for every command and flag; README.md
// has a quickstart and the same tables.
//
// # Commands
//
//	tenantkv serve [flags]                    run a node
//	tenantkv tenant create|list|show|set|rename|delete …
//	tenantkv tenant token|tokens|revoke …     tenant tokens
//	tenantkv tenant export NAME > FILE | tenant import NAME < FILE
//	tenantkv token create | token revoke ID   operator tokens
//	tenantkv get KEY | put KEY VALUE | del KEY | scan [flags]
//	tenantkv cluster status | cluster remove NODE-ID
//	tenantkv version | help [COMMAND]
//
// Global flags (--endpoints, --token, --token-file, --tenant, --json,
// --timeout) are accepted before or after the command words, and each but
// --json and --timeout also comes from a TENANTKV_ environment variable;
// flags win. With no token given at all, ./data/operator.token is used if it
// exists, which is where `make run` leaves the operator token.
//
// # Exit status
//
// 0 on success; 1 when the command failed, with one line on stderr such as
// "tenantkv: not found"; 2 when the command line is wrong, with the error
// and a usage hint on stderr.
//
// # Output
//
// Text by default: a value and a newline for get, "key<TAB>value" lines for
// scan, tables for lists. With --json every read command prints one JSON
// document; a key or value is a string field when it is valid UTF-8 and a
// "…_base64" field otherwise (see output.go).
//
// # Structure
//
// main.go dispatches to the commands through run, which tests call
// directly; flags.go parses global flags anywhere on the line and resolves
// the token; serve.go, tenant.go (tenants and tokens), transfer.go (export,
// import, the progress bar), data.go and cluster.go are the commands;
// output.go renders text and JSON.
package main
