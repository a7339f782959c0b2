// Command ulbagent runs on a back-end server and answers ulb's agent health checks with
// the server's load (0-100): a fixed figure, one read from a file at every request (so an
// operator or a script can change it, or remove the file to take the server out), or
// one computed from /proc/loadavg and the number of CPUs.
//
//	ulbagent [-listen :7777] [-load-file F | -load N | -auto]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"ulb/balancer/health"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ulbagent:", err)
		os.Exit(2)
	}
}

// run parses args, listens and serves until ctx is done; ready (if not nil) gets the
// address listened on.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) error {
	fs := flag.NewFlagSet("ulbagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", fmt.Sprintf(":%d", health.DefaultAgentPort), "UDP address to answer on")
	file := fs.String("load-file", "", "answer the integer read from this file at each request")
	fixed := fs.Int("load", -1, "answer this fixed load (0-100)")
	auto := fs.Bool("auto", false, "answer 100 × the 1-minute load average / CPUs, from /proc/loadavg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var load func() int
	n := 0
	if *file != "" {
		load, n = health.FileLoad(*file), n+1
	}
	if *fixed >= 0 {
		if *fixed > 100 {
			return fmt.Errorf("-load %d: want 0-100", *fixed)
		}
		load, n = health.FixedLoad(*fixed), n+1
	}
	if *auto {
		load, n = health.AutoLoad("/proc/loadavg", 0), n+1
	}
	if n != 1 {
		return errors.New("give exactly one of -load-file, -load, -auto")
	}
	conn, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	defer conn.Close()
	slog.New(slog.NewTextHandler(stderr, nil)).Info("ulbagent listening", slog.String("addr", conn.LocalAddr().String()))
	if ready != nil {
		ready(conn.LocalAddr())
	}
	return health.ServeAgent(ctx, conn, load)
}
