// Command ulbd is the ulb daemon: it reads its TOML configuration, checks that the host
// kernel stays out of the way on the NICs it takes over, and runs the router until
// SIGTERM or SIGINT. SIGHUP reloads the configuration.
//
//	ulbd [-c FILE] [-log-level LEVEL] [-log-format text|json] [-cpuprofile FILE]   run in the foreground
//	ulbd -check [-c FILE]               validate FILE, touching no NIC
//	ulbd -version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"ulb/config"
	"ulb/internal/hostcheck"
	"ulb/internal/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // a refused configuration, a failed host check, a run error
	exitUsage = 2 // bad flags
)

func main() {
	os.Exit(ulbd(os.Args[1:], os.Stdout, os.Stderr))
}

// ulbd runs the command with its arguments and returns the exit status.
func ulbd(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("ulbd", flag.ContinueOnError)
	fl.SetOutput(stderr)
	file := fl.String("c", "/etc/ulb/ulbd.toml", "configuration `FILE`")
	check := fl.Bool("check", false, "validate the configuration and exit; touches no NIC")
	logLevel := fl.String("log-level", "", "log `LEVEL` (debug, info, warn, error); overrides log_level of the file")
	logFormat := fl.String("log-format", "text", "log `FORMAT`: text (slog's key=value) or json (one JSON object a line)")
	showVersion := fl.Bool("version", false, "print the version and exit")
	cpuProfile := fl.String("cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	if err := fl.Parse(args); err != nil {
		return exitUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "ulbd: unexpected argument %q\n", fl.Arg(0))
		return exitUsage
	}
	if *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(stderr, "ulbd: -log-format %q: want text or json\n", *logFormat)
		fl.Usage()
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintf(stdout, "ulbd %s (%s)\n", version, runtime.Version())
		return exitOK
	}
	var flagLevel slog.Level
	if *logLevel != "" {
		l, err := config.ParseLogLevel(*logLevel)
		if err != nil {
			fmt.Fprintf(stderr, "ulbd: -log-level: %v\n", err)
			return exitUsage
		}
		flagLevel = l
	}

	// ulbd starts from the run-time state beside the file when ulbadm changed it since
	// (config.LoadWithState); -check checks the file.
	var cfg *config.Config
	var err error
	var stateNote string
	if *check {
		cfg, err = config.Load(*file)
	} else {
		cfg, stateNote, err = config.LoadWithState(*file)
	}
	if *check {
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "%s (warning)\n", w)
		}
		fmt.Fprintf(stdout, "%s: ok\n", *file)
		return exitOK
	}

	level := new(slog.LevelVar)
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if *logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)
	if err != nil {
		node.LogIssues(logger, err)
		return exitError
	}
	if *logLevel != "" {
		level.Set(flagLevel)
	} else {
		level.Set(cfg.LogLevel)
	}
	logger.Info("starting", "version", version, "config", *file, "hostname", cfg.Hostname)
	if stateNote != "" {
		logger.Info("configuration", "state", stateNote)
	}
	for _, w := range cfg.Warnings {
		logger.Warn("configuration", "warning", w.String())
	}

	if !hostReady(logger, cfg) {
		return exitError
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			logger.Error("cpu profile", "err", err)
			return exitError
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			logger.Error("cpu profile", "err", err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	onReload := func(c *config.Config) {
		if *logLevel == "" {
			level.Set(c.LogLevel)
		}
	}
	if err := node.Run(ctx, cfg, logger, onReload); err != nil {
		logger.Error("stopped", "err", err)
		return exitError
	}
	logger.Info("stopped")
	return exitOK
}

// hostReady checks that the kernel stays out of the way on the AF_PACKET ports' NICs
// (disabling IPv6 on them) and logs what it finds; false means ulbd must not start.
func hostReady(logger *slog.Logger, cfg *config.Config) bool {
	var devices []string
	for _, p := range cfg.Ports {
		if p.Kind == config.KindAFPacket {
			devices = append(devices, p.Device)
		}
	}
	findings, err := hostcheck.Check(devices, hostcheck.Options{FixIPv6: true})
	if err != nil {
		logger.Error("host check failed", "err", err)
		return false
	}
	for _, f := range findings {
		level := slog.LevelInfo
		switch f.Severity {
		case hostcheck.Warning:
			level = slog.LevelWarn
		case hostcheck.Fatal:
			level = slog.LevelError
		}
		logger.Log(context.Background(), level, "host check", "severity", f.Severity.String(), "finding", f.String())
	}
	if hostcheck.AnyFatal(findings) {
		logger.Error("host not ready: fix the fatal findings above")
		return false
	}
	return true
}
