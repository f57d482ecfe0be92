// Command broadcaster watches the Knative event mesh and serves it to consumers; its other
// commands follow a running one, print the effective configuration and the build. See
// README.md for usage, and `broadcaster --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
	"github.com/event-mesh-broadcaster/broadcaster/config"
)

func main() {
	// The first SIGINT or SIGTERM stops the broadcaster cleanly (and says why); a second one
	// ends the process at once.
	ctx, stop := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		stop(fmt.Errorf("%w %v", errSignal, sig))
		sig = <-signals
		fmt.Fprintf(os.Stderr, "broadcaster: %v again: exiting without a clean stop\n", sig)
		os.Exit(exitFailure)
	}()
	info, _ := os.Stdout.Stat()
	terminal := info != nil && info.Mode()&os.ModeCharDevice != 0
	os.Exit(runCommand(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, terminal))
}

// Exit statuses: 2 for a usage or configuration error, 1 for a failure at run time.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// runCommand runs the command args name (the broadcaster itself when args start with a flag
// or are empty) and returns the exit status.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, terminal bool) int {
	name, rest := "run", args
	switch {
	case len(args) > 0 && (args[0] == "--version" || args[0] == "-version"):
		name, rest = "version", args[1:]
	case len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-':
		name, rest = args[0], args[1:]
	}
	cmd, ok := commandNamed(name)
	if !ok {
		fmt.Fprintf(stderr, "broadcaster: unknown command %q; the commands are %s (see broadcaster --help)\n", name, commandNames())
		return exitUsage
	}
	err := cmd.run(ctx, rest, commandIO{getenv: getenv, stdout: stdout, stderr: stderr, terminal: terminal})
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		writeHelp(stdout, cmd)
		return exitOK
	case errors.Is(err, errUsage), errors.Is(err, config.ErrUsage):
		fmt.Fprintln(stderr, "broadcaster:", printable.Text(err.Error()))
		return exitUsage
	default:
		fmt.Fprintln(stderr, "broadcaster:", printable.Text(err.Error()))
		return exitFailure
	}
}

// commandIO is what a command reads and writes besides its arguments.
type commandIO struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	terminal       bool // stdout is a terminal
}
