// Package bench holds benchmarks only: the event flow through the outbox,
// the broker and the inbox, measured on each broker microshop runs on.
package bench
