// Command ulbbench builds test benches in network namespaces from a TOML file and runs
// their checks; it also provides the built-in servers and clients the benches use.
//
//	ulbbench up   [-bin DIR] FILE     bring the bench up and leave it running
//	ulbbench down FILE                stop its processes, delete its namespaces
//	ulbbench run  [-bin DIR] FILE     up, run every check, down; exit 1 if a check failed
//	ulbbench compare [-bin DIR] [-o json] [-repeat N] [-target NAME]... FILE
//	                                  run a compare file's workloads on each target bench
//	ulbbench loadgen send -to ADDR [-for D] [-rate PPS] [-flows N] [...]
//	                                  send 64-byte UDP frames (run in the sender's namespace)
//	ulbbench loadgen count -dev DEV [-for D] [-sink-port N [-sink-drop]]
//	                                  count the frames DEV receives until -for or SIGINT
//	ulbbench loadgen flood -to ADDR:PORT -sources PREFIX [-for D] [-rate PPS] [...]
//	                                  send TCP SYNs from random addresses of PREFIX (a
//	                                  documentation prefix) and random ports
//	ulbbench serve -name NAME [-tcp ADDR] [-udp ADDR] [-http ADDR] [-sink ADDR] [-ready FILE]
//	ulbbench decap -tun NAME [-ready FILE]
//	                                  decapsulate IP-in-IP to a TUN device (a server of a
//	                                  tunnel bench, on a kernel without ipip / ip6tnl)
//	ulbbench client tcp|udp|http|transfer|conns -to ADDR:PORT [options]
//	ulbbench client ping -to ADDR [-count N] [-timeout D]
//	                                  ICMP / ICMPv6 echo (raw socket, needs root)
//	ulbbench client loop -to ADDR:PORT -for D [-interval D] [-attempt-timeout D]
//	                                  a TCP connection every interval (failover checks)
//	ulbbench client keepalive -to ADDR:PORT -for D [-concurrency N] [-attempt-timeout D]
//	                                  HTTP GETs back to back over N keep-alive connections
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"ulb/bench"
	"ulb/bench/decap"
	"ulb/bench/loadgen"
	"ulb/bench/traffic"
)

const usage = `usage:
  ulbbench up   [-bin DIR] FILE
  ulbbench down FILE
  ulbbench run  [-bin DIR] FILE
  ulbbench serve -name NAME [-tcp ADDR]... [-udp ADDR]... [-http ADDR]... [-sink ADDR]... [-ready FILE]
  ulbbench decap -tun NAME [-ready FILE]
  ulbbench client tcp|udp|http|transfer|conns -to ADDR:PORT [-timeout D] [-path P] [-bytes N] [-count N] [-concurrency N]
  ulbbench client ping -to ADDR [-count N] [-timeout D]
  ulbbench client loop -to ADDR:PORT -for D [-interval D] [-attempt-timeout D] [-timeout D]
  ulbbench client keepalive -to ADDR:PORT -for D [-concurrency N] [-attempt-timeout D] [-timeout D]
  ulbbench compare [-bin DIR] [-o table|json] [-repeat N] [-target NAME]... FILE
  ulbbench loadgen send -to ADDR [-from ADDR] [-dev DEV] [-mac MAC] [-port N] [-flows N] [-for D] [-rate PPS] [-batch N]
  ulbbench loadgen count -dev DEV [-for D] [-sink-port N [-sink-drop]]
  ulbbench loadgen flood -to ADDR:PORT -sources PREFIX [-dev DEV] [-mac MAC] [-for D] [-rate PPS] [-batch N]
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up", "down", "run":
		code = benchCmd(ctx, cmd, args)
	case "serve":
		code = serveCmd(ctx, args)
	case "client":
		code = clientCmd(ctx, args)
	case "decap":
		code = decapCmd(ctx, args)
	case "compare":
		code = compareCmd(ctx, args)
	case "loadgen":
		code = loadgenCmd(ctx, args)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "ulbbench: unknown command %q\n%s", cmd, usage)
		code = 2
	}
	stop()
	os.Exit(code)
}

func benchCmd(ctx context.Context, cmd string, args []string) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	bin := fs.String("bin", "", "directory of ulbd and ulbbench (default $"+bench.EnvBin+", then PATH, then a build from this checkout)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "ulbbench %s: want one bench file\n", cmd)
		return 2
	}
	spec, err := bench.Load(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	opts := bench.Options{BinDir: *bin, Out: os.Stdout}
	switch cmd {
	case "down":
		if err := bench.Down(spec, opts); err != nil {
			fmt.Fprintln(os.Stderr, "ulbbench down:", err)
			return 1
		}
		return 0
	case "up":
		if _, err := bench.Up(ctx, spec, opts); err != nil {
			fmt.Fprintln(os.Stderr, "ulbbench up:", err)
			return 1
		}
		return 0
	}
	b, err := bench.Up(ctx, spec, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench run:", err)
		return 1
	}
	rs := b.Run(ctx)
	fmt.Println(bench.Summary(rs))
	if err := b.Down(); err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench run: down:", err)
		return 1
	}
	if bench.Failed(rs) || ctx.Err() != nil {
		return 1
	}
	return 0
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func serveCmd(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg traffic.Config
	fs.StringVar(&cfg.Name, "name", "", "the answer of every server (default the hostname)")
	fs.Var((*listFlag)(&cfg.TCP), "tcp", "TCP address answered with the name (repeatable)")
	fs.Var((*listFlag)(&cfg.UDP), "udp", "UDP address answered with the name (repeatable)")
	fs.Var((*listFlag)(&cfg.HTTP), "http", "HTTP address answered with 200 and the name (repeatable)")
	fs.Var((*listFlag)(&cfg.Sink), "sink", "TCP sink address answering byte count and SHA-256 (repeatable)")
	ready := fs.String("ready", "", "file to create once every listener is bound")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			fmt.Fprintln(os.Stderr, "ulbbench serve:", err)
			return 1
		}
		cfg.Name = h
	}
	srv, err := traffic.Listen(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench serve:", err)
		return 1
	}
	fmt.Printf("serving as %q: %v\n", cfg.Name, srv.Addrs())
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "ulbbench serve:", err)
			return 1
		}
	}
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench serve:", err)
		return 1
	}
	return 0
}

func clientCmd(ctx context.Context, args []string) int {
	if len(args) < 1 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet("client "+kind, flag.ContinueOnError)
	var a bench.ClientArgs
	fs.StringVar(&a.To, "to", "", "server ADDR:PORT (ping: ADDR)")
	fs.StringVar(&a.Path, "path", "/", "http: request path")
	size := fs.String("bytes", "1MiB", "transfer: bytes to send (e.g. 65536, 64MiB)")
	fs.IntVar(&a.Count, "count", 10, "conns: connections; ping: echo replies to wait for")
	fs.IntVar(&a.Concurrency, "concurrency", 8, "conns: connections at a time; keepalive: connections")
	fs.DurationVar(&a.Duration, "for", 10*time.Second, "loop: how long new connections start; keepalive: how long requests go")
	fs.DurationVar(&a.Interval, "interval", 100*time.Millisecond, "loop: time between two connections")
	fs.DurationVar(&a.AttemptTimeout, "attempt-timeout", time.Second, "loop: bound of one connection; keepalive: of one request")
	timeout := fs.Duration("timeout", 10*time.Second, "overall timeout")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if a.To == "" {
		fmt.Fprintln(os.Stderr, "ulbbench client: -to is required")
		return 2
	}
	n, err := bench.ParseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench client:", err)
		return 2
	}
	a.Bytes = n
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep := bench.RunClient(cctx, kind, a)
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench client:", err)
		return 1
	}
	if !rep.OK {
		return 1
	}
	if rep.Conns != nil && rep.Conns.Failed > 0 {
		return 1
	}
	return 0
}

func compareCmd(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var opts bench.CompareOptions
	fs.StringVar(&opts.BinDir, "bin", "", "directory of ulbd and ulbbench (default $"+bench.EnvBin+", then PATH, then a build from this checkout)")
	format := fs.String("o", "table", "output: table or json")
	fs.IntVar(&opts.Repeat, "repeat", 0, "repetitions of each workload (default the file's)")
	fs.Var((*listFlag)(&opts.Targets), "target", "run only this target (repeatable)")
	ownNames := fs.Bool("own-names", true, "give each bench a name of this run (namespaces uNNNNNT-HOST), so that another run of the same bench files cannot collide with it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || (*format != "table" && *format != "json") {
		fmt.Fprintln(os.Stderr, "ulbbench compare: want one compare file and -o table or json")
		return 2
	}
	spec, err := bench.LoadCompare(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	opts.Out = os.Stderr
	if *ownNames {
		opts.BenchName = func(target, _ string) string {
			i := slices.IndexFunc(spec.Targets, func(t bench.Target) bool { return t.Name == target })
			return fmt.Sprintf("u%05d%d", os.Getpid()%100000, i%10)
		}
	}
	rep, err := bench.RunCompare(ctx, spec, opts)
	if *format == "json" {
		rep.WriteJSON(os.Stdout)
	} else {
		rep.WriteTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench compare:", err)
		return 1
	}
	if rep.Failed() {
		return 1
	}
	return 0
}

func loadgenCmd(ctx context.Context, args []string) int {
	if len(args) < 1 || (args[0] != "send" && args[0] != "count" && args[0] != "flood") {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("loadgen "+args[0], flag.ContinueOnError)
	dur := fs.Duration("for", 5*time.Second, "send, flood: sending time; count: the longest count")
	enc := json.NewEncoder(os.Stdout)
	if args[0] == "flood" {
		return floodCmd(ctx, fs, dur, args[1:])
	}
	if args[0] == "count" {
		cfg := loadgen.CountConfig{}
		fs.StringVar(&cfg.Device, "dev", "eth0", "interface whose rx_packets is counted")
		fs.IntVar(&cfg.SinkPort, "sink-port", 0, "UDP port to bind and never read, so the kernel drops the frames without ICMP (0: none)")
		fs.BoolVar(&cfg.SinkDrop, "sink-drop", false, "with -sink-port, drop its datagrams at the device's ingress once counted, before the IP stack (tcx eBPF)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		cfg.Duration = *dur
		rep, err := loadgen.Count(ctx, cfg, func() { fmt.Println("ready") })
		if err != nil {
			fmt.Fprintln(os.Stderr, "ulbbench loadgen count:", err)
			return 1
		}
		enc.Encode(rep)
		return 0
	}
	var cfg loadgen.SendConfig
	to := fs.String("to", "", "destination IPv4 address")
	from := fs.String("from", "", "source IPv4 address (default the route's)")
	fs.StringVar(&cfg.Device, "dev", "", "egress interface (default the route's)")
	fs.StringVar(&cfg.DstMAC, "mac", "", "destination MAC (default the next hop's, from the neighbour table)")
	port := fs.Uint("port", loadgen.DefaultDstPort, "UDP destination port")
	fs.IntVar(&cfg.Flows, "flows", loadgen.DefaultFlows, "distinct UDP source ports")
	fs.IntVar(&cfg.Rate, "rate", 0, "frames per second (0: full speed)")
	fs.IntVar(&cfg.Batch, "batch", loadgen.DefaultBatch, "frames per sendmmsg")
	fs.IntVar(&cfg.Senders, "senders", 1, "sockets sending in parallel, one thread each")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var err error
	if cfg.Dst, err = netip.ParseAddr(*to); err != nil || *port > 65535 {
		fmt.Fprintln(os.Stderr, "ulbbench loadgen send: want -to IPV4ADDRESS and -port 1..65535")
		return 2
	}
	if *from != "" {
		if cfg.Src, err = netip.ParseAddr(*from); err != nil {
			fmt.Fprintln(os.Stderr, "ulbbench loadgen send: -from:", err)
			return 2
		}
	}
	cfg.DstPort, cfg.Duration = uint16(*port), *dur
	rep, err := loadgen.Send(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench loadgen send:", err)
		return 1
	}
	enc.Encode(rep)
	return 0
}

func floodCmd(ctx context.Context, fs *flag.FlagSet, dur *time.Duration, args []string) int {
	var cfg loadgen.FloodConfig
	to := fs.String("to", "", "destination ADDRESS:PORT of the SYNs (e.g. a VIP)")
	sources := fs.String("sources", "", "source prefix, inside 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32")
	fs.StringVar(&cfg.Device, "dev", "", "egress interface (default the route's)")
	fs.StringVar(&cfg.DstMAC, "mac", "", "destination MAC (default the next hop's, from the neighbour table)")
	fs.IntVar(&cfg.Rate, "rate", 0, "SYNs per second (0: flat out)")
	fs.IntVar(&cfg.Batch, "batch", loadgen.DefaultBatch, "frames per sendmmsg")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.Dst, err = netip.ParseAddrPort(*to); err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench loadgen flood: want -to ADDRESS:PORT")
		return 2
	}
	if cfg.Sources, err = netip.ParsePrefix(*sources); err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench loadgen flood: want -sources PREFIX:", err)
		return 2
	}
	cfg.Duration = *dur
	rep, err := loadgen.Flood(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench loadgen flood:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// decapCmd runs the userspace decapsulator (bench/decap) until ctx ends.
func decapCmd(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("decap", flag.ContinueOnError)
	tun := fs.String("tun", "", "the TUN device (existing, up) the inner packets go to")
	ready := fs.String("ready", "", "file to create once the sockets are open")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *tun == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "ulbbench decap: want -tun NAME")
		return 2
	}
	var st decap.Stats
	err := decap.Run(ctx, *tun, &st, func() {
		if *ready != "" {
			os.WriteFile(*ready, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644)
		}
	})
	fmt.Printf("decap: %d IPv4 and %d IPv6 packets, %d malformed, %d write errors\n",
		st.Packets4.Load(), st.Packets6.Load(), st.Malformed.Load(), st.WriteErrors.Load())
	if err != nil {
		fmt.Fprintln(os.Stderr, "ulbbench decap:", err)
		return 1
	}
	return 0
}
