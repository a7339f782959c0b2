package health_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"ulb/balancer"
	"ulb/balancer/health"
)

// prober is a stand-in for ulbd's router: 203.0.113.2 refuses every connection.
type prober struct{}

func (prober) Ping(context.Context, netip.Addr) (time.Duration, error) { return time.Millisecond, nil }

func (prober) TCPConnect(_ context.Context, dst netip.AddrPort) (time.Duration, error) {
	if dst.Addr() == netip.MustParseAddr("203.0.113.2") {
		return 0, health.ErrRefused
	}
	return time.Millisecond, nil
}

func (prober) UDPExchange(context.Context, netip.AddrPort, []byte, []byte) (int, time.Duration, error) {
	return 0, 0, health.ErrUnreachable
}

// Example wires the engine to a balancer as ulbd does: transitions go to SetHealth,
// agent loads to SetLoad. The refusing server stops getting new flows.
func Example() {
	b := balancer.New(balancer.Config{})
	s1, s2 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	vip := netip.MustParseAddr("198.51.100.100")
	err := b.Set([]balancer.RuleConfig{{Name: "web", VIP: vip, PortLo: 80, PortHi: 80,
		Proto: balancer.ProtoTCP, PMask: balancer.NoPersistence, Group: "web", Enabled: true,
		Servers: []balancer.ServerConfig{{Addr: s1, Port: 80, Weight: 1}, {Addr: s2, Port: 80, Weight: 1}}}})
	if err != nil {
		panic(err)
	}
	e := health.New(health.Config{
		Prober:   prober{},
		OnChange: func(t health.Target, up bool) { _ = b.SetHealth(t.Group, t.Addr, t.Port, up) },
		OnLoad:   func(t health.Target, load int) { _ = b.SetLoad(t.Group, t.Addr, t.Port, load) },
	})
	targets := []health.Target{
		{Group: "web", Addr: s1, Port: 80, VIP: vip, Proto: balancer.ProtoTCP},
		{Group: "web", Addr: s2, Port: 80, VIP: vip, Proto: balancer.ProtoTCP},
	}
	err = e.Set(map[string]health.Check{"web-tcp": {Test: health.TestTCP, Interval: 10 * time.Millisecond, Count: 3}},
		map[string][]health.Target{"web-tcp": targets})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	for range 200 { // at most 2 s
		if r, _ := b.Snapshot().RuleByName("web"); r.Healthy() == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	r, _ := b.Snapshot().RuleByName("web")
	for i := range 4 {
		p, _ := r.Pick(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 1000, 80)
		fmt.Println("flow", i, "to", p.Addr)
	}
	for _, res := range e.Results() {
		fmt.Println(res.Target.Addr, res.State, res.LastResult)
	}
	// Output:
	// flow 0 to 203.0.113.1
	// flow 1 to 203.0.113.1
	// flow 2 to 203.0.113.1
	// flow 3 to 203.0.113.1
	// 203.0.113.1 up ok
	// 203.0.113.2 down fail: refused
}
