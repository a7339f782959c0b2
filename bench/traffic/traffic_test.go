package traffic

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func startServers(t *testing.T, name string) map[string][]string {
	t.Helper()
	s, err := Listen(Config{Name: name, TCP: []string{"127.0.0.1:0"}, UDP: []string{"127.0.0.1:0"},
		HTTP: []string{"127.0.0.1:0"}, Sink: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s.Addrs()
}

func TestServersAnswer(t *testing.T) {
	addrs := startServers(t, "srv-a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if got, err := AskTCP(ctx, addrs["tcp"][0]); err != nil || got != "srv-a" {
		t.Errorf("AskTCP = %q, %v; want srv-a", got, err)
	}
	if got, err := AskUDP(ctx, addrs["udp"][0]); err != nil || got != "srv-a" {
		t.Errorf("AskUDP = %q, %v; want srv-a", got, err)
	}
	h, err := GetHTTP(ctx, addrs["http"][0], "/x")
	if err != nil || h.Status != 200 || h.Body != "srv-a" || h.Server != "srv-a" {
		t.Errorf("GetHTTP = %+v, %v", h, err)
	}
	for _, n := range []int64{0, 1, 3<<20 + 17} {
		r, err := Transfer(ctx, addrs["sink"][0], n)
		if err != nil || r.SinkBytes != n || r.SinkSHA256 != r.SHA256 || r.Server != "srv-a" {
			t.Errorf("Transfer(%d) = %+v, %v", n, r, err)
		}
	}
	c := Conns(ctx, addrs["tcp"][0], 50, 5)
	if c.OK != 50 || c.Failed != 0 || c.Names["srv-a"] != 50 {
		t.Errorf("Conns = %+v", c)
	}
}

func TestClientsFail(t *testing.T) {
	// A port nobody listens on: grab one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := AskTCP(ctx, dead); err == nil {
		t.Error("AskTCP to a closed port succeeded")
	}
	if _, err := AskUDP(ctx, dead); err == nil {
		t.Error("AskUDP to a closed port succeeded")
	}
	if c := Conns(ctx, dead, 5, 2); c.OK != 0 || c.Failed != 5 || c.FirstErr == "" {
		t.Errorf("Conns = %+v", c)
	}
}

// A sink that answers with a wrong hash makes Transfer fail with ErrMismatch.
func TestTransferMismatch(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Write([]byte("10 " + strings.Repeat("0", 64) + " liar\n"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Transfer(ctx, l.Addr().String(), 10)
	if !errors.Is(err, ErrMismatch) {
		t.Errorf("Transfer err = %v, want ErrMismatch", err)
	}
}

func TestParseSinkAnswer(t *testing.T) {
	for _, bad := range []string{"", "1", "x " + strings.Repeat("a", 64) + " n", "1 abc n", "-1 " + strings.Repeat("a", 64) + " n"} {
		if _, _, _, err := parseSinkAnswer(bad); err == nil {
			t.Errorf("parseSinkAnswer(%q) accepted", bad)
		}
	}
	n, sum, name, err := parseSinkAnswer("5 " + strings.Repeat("b", 64) + " my name")
	if err != nil || n != 5 || sum != strings.Repeat("b", 64) || name != "my name" {
		t.Errorf("parseSinkAnswer = %d %q %q %v", n, sum, name, err)
	}
}
