// Command rampart is a production-security gateway and deployment verifier.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-security/rampart/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
