// Package redistest connects tests to the Redis server scripts/test starts
// (RAMPART_TEST_REDIS_URL) and gives each test its own key prefix.
//
// It is test support only: nothing outside _test.go files imports it.
package redistest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Client connects to RAMPART_TEST_REDIS_URL with a pool of poolSize
// connections (0: go-redis's default), skipping the test when the variable
// is unset, or failing it when RAMPART_TEST_REQUIRE_SERVICES=1. The client
// is closed when the test ends.
func Client(t testing.TB, poolSize int) *goredis.Client {
	t.Helper()
	u := os.Getenv("RAMPART_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("RAMPART_TEST_REDIS_URL is not set")
		}
		t.Skip("RAMPART_TEST_REDIS_URL is not set")
	}
	opts, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatalf("RAMPART_TEST_REDIS_URL: %v", err)
	}
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", u, err)
	}
	return c
}

// Prefix is a key prefix unique to the test; its keys are deleted when the
// test ends.
func Prefix(t testing.TB, c *goredis.Client) string {
	t.Helper()
	p := fmt.Sprintf("rampart-test:%s:%d:", strings.ReplaceAll(t.Name(), "/", "."), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}
