package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configure a PostgreSQL sink.
type PostgresOptions struct {
	// URL is a pgx connection string (use sslmode=require or stronger off loopback).
	URL string
	// Schema and Table name the table (defaults: the search_path, "audit_events").
	Schema, Table string
	// Stream names this writer's chain (one per gateway instance, e.g. the
	// host name), so several instances share one table. Default "default".
	Stream string
}

// PostgresSink writes events to a queryable table: one row per event with
// the event's fields in columns, the exact event JSON, and the hash chain
// (seq, prev_hash, hash) per stream. A batch is one transaction. Rows hold
// plaintext; protect the database with its own access control and TLS.
//
// The sink holds one connection: the Logger writes one batch at a time.
type PostgresSink struct {
	table  pgx.Identifier
	stream string

	mu   sync.Mutex // guards conn and the chain head
	conn *pgx.Conn
	next uint64
	last hash32
}

// OpenPostgres connects, creates the table if needed and continues the
// stream's chain from its last row.
func OpenPostgres(ctx context.Context, o PostgresOptions) (*PostgresSink, error) {
	if o.Table == "" {
		o.Table = "audit_events"
	}
	if o.Stream == "" {
		o.Stream = "default"
	}
	s := &PostgresSink{stream: o.Stream, table: pgx.Identifier{o.Table}}
	if o.Schema != "" {
		s.table = pgx.Identifier{o.Schema, o.Table}
	}
	if o.URL == "" {
		return nil, errors.New("audit postgres sink: url is required")
	}
	c, err := pgx.Connect(ctx, o.URL)
	if err != nil {
		return nil, fmt.Errorf("audit postgres connect: %w", err)
	}
	s.conn = c
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *PostgresSink) migrate(ctx context.Context) error {
	t := s.table.Sanitize()
	idx := pgx.Identifier{s.table[len(s.table)-1] + "_ts_idx"}.Sanitize()
	idx2 := pgx.Identifier{s.table[len(s.table)-1] + "_type_ts_idx"}.Sanitize()
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + t + ` (
			stream     text        NOT NULL,
			seq        bigint      NOT NULL,
			ts         timestamptz NOT NULL,
			event_type text        NOT NULL,
			"user"     text        NOT NULL DEFAULT '',
			source_ip  inet,
			request_id text        NOT NULL DEFAULT '',
			route      text        NOT NULL DEFAULT '',
			outcome    text        NOT NULL DEFAULT '',
			details    jsonb,
			event      text        NOT NULL,
			prev_hash  bytea       NOT NULL,
			hash       bytea       NOT NULL,
			PRIMARY KEY (stream, seq))`,
		`CREATE INDEX IF NOT EXISTS ` + idx + ` ON ` + t + ` (ts)`,
		`CREATE INDEX IF NOT EXISTS ` + idx2 + ` ON ` + t + ` (event_type, ts)`,
	}
	for _, q := range stmts {
		if _, err := s.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("audit postgres migrate: %w", err)
		}
	}
	s.next = 1
	var seq int64
	var h []byte
	err := s.conn.QueryRow(ctx, `SELECT seq, hash FROM `+t+` WHERE stream = $1 ORDER BY seq DESC LIMIT 1`, s.stream).Scan(&seq, &h)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("audit postgres chain head: %w", err)
	case len(h) != len(s.last):
		return errors.New("audit postgres chain head: bad hash length")
	}
	s.next = uint64(seq) + 1
	copy(s.last[:], h)
	return nil
}

// Write inserts the batch in one transaction.
func (s *PostgresSink) Write(ctx context.Context, batch []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, last := s.next, s.last
	rows := make([][]any, len(batch))
	for i, e := range batch {
		h := recordHash(next, last, e.JSON, "", nil, nil)
		ev := e.Event
		var ip any
		if ev.SourceIP.IsValid() {
			ip = ev.SourceIP
		}
		var details any
		if len(ev.Details) > 0 {
			details = ev.Details
		}
		rows[i] = []any{s.stream, int64(next), ev.Timestamp, ev.Type, ev.User, ip, ev.RequestID, ev.Route, ev.Outcome,
			details, string(e.JSON), append([]byte(nil), last[:]...), append([]byte(nil), h[:]...)}
		next, last = next+1, h
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("audit postgres begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	cols := []string{"stream", "seq", "ts", "event_type", "user", "source_ip", "request_id", "route", "outcome", "details", "event", "prev_hash", "hash"}
	if _, err := tx.CopyFrom(ctx, s.table, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("audit postgres insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("audit postgres commit: %w", err)
	}
	s.next, s.last = next, last
	return nil
}

// Verify walks the stream's rows in order and checks the hash chain; it
// returns the number of rows checked and the first break found.
func (s *PostgresSink) Verify(ctx context.Context) (uint64, *Finding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := s.conn.Query(ctx, `SELECT seq, event, prev_hash, hash FROM `+s.table.Sanitize()+` WHERE stream = $1 ORDER BY seq`, s.stream)
	if err != nil {
		return 0, nil, fmt.Errorf("audit postgres verify: %w", err)
	}
	defer rows.Close()
	var n uint64
	var prev hash32
	want := uint64(1)
	for rows.Next() {
		var seq int64
		var ev string
		var p, h []byte
		if err := rows.Scan(&seq, &ev, &p, &h); err != nil {
			return n, nil, fmt.Errorf("audit postgres verify: %w", err)
		}
		if uint64(seq) != want {
			return n, &Finding{Kind: KindDeleted, Seq: want, Detail: fmt.Sprintf("rows %d to %d missing", want, seq-1)}, nil
		}
		var r record
		r.seq, r.plain = uint64(seq), []byte(ev)
		copy(r.prev[:], p)
		copy(r.hash[:], h)
		if len(p) != 32 || len(h) != 32 || r.computeHash() != r.hash {
			return n, &Finding{Kind: KindEdited, Seq: r.seq, Detail: "row does not match its hash"}, nil
		}
		if r.prev != prev {
			return n, &Finding{Kind: KindEdited, Seq: r.seq - 1, Detail: fmt.Sprintf("row %d does not chain to row %d", r.seq, r.seq-1)}, nil
		}
		prev, want = r.hash, want+1
		n++
	}
	return n, nil, rows.Err()
}

// Close closes the connection.
func (s *PostgresSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.conn.Close(context.Background()); err != nil {
		return fmt.Errorf("audit postgres close: %w", err)
	}
	return nil
}
