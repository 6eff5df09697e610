// Package audit records security events (authentication, authorization,
// state-changing requests, key and user lifecycle, configuration changes,
// rate-limit violations, WebSocket lifecycle) into a tamper-evident log.
//
// Events go through a Logger: a bounded queue in front of one writer
// goroutine that commits groups of events to a Sink and fsyncs once per
// group. A full queue makes callers wait a bounded time and then fail with
// ErrQueueFull, so nothing is dropped silently. The file sink chains every
// record to the previous one with SHA-256, seals each segment with
// HMAC-SHA256, can encrypt every record with AES-256-GCM, and prunes whole
// segments by retention while keeping the rest verifiable from a signed
// anchor. Verify, Export and Tail read a log directory back.
//
// See docs/audit.md for the file format and the guarantees.
package audit
