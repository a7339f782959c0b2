// Command ulbadm administers a running ulbd through its control socket:
//
//	ulbadm [-s SOCKET] [-o json] VERB [options] [object]
//
// Run "ulbadm help" for the verbs. One of them needs no ulbd: ulbadm wizard writes a
// first configuration from setup questions.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"ulb/cmd/ulbadm/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
