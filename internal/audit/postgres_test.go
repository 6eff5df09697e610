package audit

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("RAMPART_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("RAMPART_TEST_POSTGRES_URL is not set")
		}
		t.Skip("RAMPART_TEST_POSTGRES_URL not set")
	}
	return u
}

// testSchema creates a schema for this test and drops it afterwards.
func testSchema(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	must(t, err)
	schema := fmt.Sprintf("audit_test_%d", time.Now().UnixNano())
	_, err = c.Exec(ctx, "CREATE SCHEMA "+schema)
	must(t, err)
	t.Cleanup(func() {
		c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		c.Close(context.Background())
	})
	return schema
}

func TestPostgresSink(t *testing.T) {
	url := postgresURL(t)
	schema := testSchema(t, url)
	ctx := context.Background()
	open := func(stream string) *PostgresSink {
		s, err := OpenPostgres(ctx, PostgresOptions{URL: url, Schema: schema, Stream: stream})
		must(t, err)
		return s
	}
	s := open("gw-1")
	l, err := New(s, Options{Window: -1})
	must(t, err)
	for i := range 10 {
		must(t, l.Record(ctx, testEvent(i)))
	}
	must(t, l.Close(ctx))

	// A restart continues the chain; another instance has its own stream.
	s = open("gw-1")
	must(t, s.Write(ctx, entries(t, testEvent(10), testEvent(11))))
	other := open("gw-2")
	must(t, other.Write(ctx, entries(t, testEvent(0))))
	must(t, other.Close())
	n, f, err := s.Verify(ctx)
	must(t, err)
	if f != nil || n != 12 {
		t.Fatalf("verify: %d rows, %v", n, f)
	}

	// Queryable columns.
	var count int
	must(t, s.conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.audit_events WHERE source_ip = '10.0.1.50' AND event_type = 'request' AND details->>'method' = 'POST' AND stream = 'gw-1'`).Scan(&count))
	if count != 12 {
		t.Fatalf("query found %d rows", count)
	}

	// Tampering with a row is found.
	_, err = s.conn.Exec(ctx, `UPDATE `+schema+`.audit_events SET event = replace(event, 'simulation', 'other') WHERE stream = 'gw-1' AND seq = 5`)
	must(t, err)
	if _, f, err = s.Verify(ctx); err != nil || f == nil || f.Kind != KindEdited || f.Seq != 5 {
		t.Fatalf("edited row: %v %v", f, err)
	}
	_, err = s.conn.Exec(ctx, `DELETE FROM `+schema+`.audit_events WHERE stream = 'gw-1' AND seq = 3`)
	must(t, err)
	if _, f, err = s.Verify(ctx); err != nil || f == nil || f.Kind != KindDeleted || f.Seq != 3 {
		t.Fatalf("deleted row: %v %v", f, err)
	}
	must(t, s.Close())
}
