// Package cli holds rampart's cobra commands. main calls Run; every command
// writes to the streams cobra gives it and returns errors instead of exiting.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// exitError carries a specific process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// withExitCode makes a command end the process with code; a nil err prints nothing.
func withExitCode(code int, err error) error { return &exitError{code: code, err: err} }

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "rampart:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "rampart:", err)
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "rampart",
		Short:         "A production security checklist in front of any HTTP/WebSocket API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newServeCmd(),
		newDemoCmd(),
		newConfigCmd(),
		newAlertsCmd(),
		newAuditCmd(),
		newSecretsCmd(),
		newCheckCmd(),
		newVerifyCmd(),
		newKeysCmd(), newMigrateCmd(),
		newUsersCmd(),
		newPolicyCmd(),
		// commands: one constructor per line, each in its own file.
	)
	return root
}
