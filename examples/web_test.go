package examples

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"ulb/bench/netns"
	"ulb/internal/testenv"
	"ulb/router/control"
)

const (
	webSocket = "/run/ulb/webui-lb1.sock"
	// webAddr is [metrics] listen of testdata/web/lb1.toml, in ulbd's namespace.
	webAddr = "127.0.0.1:9470"
	webUser = "operator"
	webPass = "correct horse battery staple"
	webVIP  = "198.51.100.100:80"
	webS1   = "203.0.113.201:80"
	webS2   = "203.0.113.202:80"
)

// nsHTTP is a web server the test runs in a namespace: it answers every request with
// its name, and can be stopped (its health check then fails) and started again.
type nsHTTP struct {
	name, ns, addr string
	mu             sync.Mutex
	srv            *http.Server
}

func startHTTPIn(t *testing.T, ns, addr, name string) *nsHTTP {
	t.Helper()
	s := &nsHTTP{name: name, ns: ns, addr: addr}
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *nsHTTP) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(s.ns, func() error {
		var err error
		ln, err = net.Listen("tcp", s.addr) // the socket stays in s.ns
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", s.addr, s.ns, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, s.name)
	})}
	go srv.Serve(ln)
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// stop closes the listener and every connection: the server is gone.
func (s *nsHTTP) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// askVIP makes n new HTTP connections from ns to the VIP and counts the answers by
// server name.
func askVIP(t *testing.T, ns string, n int) map[string]int {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialIn(ns, netip.Addr{}, addr)
		},
	}}
	defer client.CloseIdleConnections()
	got := map[string]int{}
	for range n {
		resp, err := client.Get("http://" + webVIP + "/")
		if err != nil {
			t.Fatalf("GET through the VIP: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET through the VIP: %s %v", resp.Status, err)
		}
		got[string(body)]++
	}
	return got
}

// artifactDir is where the test's screenshots go: $ULB_ARTIFACTS/TEST when set, else
// the test's artifact directory (kept with go test -artifacts).
func artifactDir(t *testing.T) string {
	if d := os.Getenv("ULB_ARTIFACTS"); d != "" {
		dir := filepath.Join(d, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.ArtifactDir()
}

// chromiumIn writes a wrapper that runs chromium inside the namespace ns (the web
// page listens on that namespace's loopback), for chromedp.ExecPath.
func chromiumIn(t *testing.T, ns string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(t.TempDir(), "chromium-in-ns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", ns, bin)
	if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// chromiumsIn returns the PIDs of the chromium processes (browser, zygotes, renderers,
// utilities: every process whose program is chromium's) in the network namespace ns.
func chromiumsIn(ns string) []int {
	var want syscall.Stat_t
	if syscall.Stat(netns.Path(ns), &want) != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil || !strings.Contains(filepath.Base(exe), "chrom") {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			out = append(out, pid)
		}
	}
	return out
}

// TestWebStatusPage drives the web status page of a real ulbd in a real headless
// Chromium: the page shows both servers up (rule green), a server whose web server
// stops going down (its row red, the rule yellow, a health event in the list) and
// coming back, and after logging in with the configured credential its offline button
// takes the server out of rotation: show-server says disabled, the rule turns blue,
// and every new connection through the VIP lands on the other server; online brings
// it back. A page of another origin that posts to the action with the browser's cached
// credential is refused (403, logged by ulbd) and changes nothing. A full-page
// screenshot of each step is written to the artifact directory.
func TestWebStatusPage(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "chromium")
	dir := copyFiles(t, "testdata/web", "bench.toml", "lb1.toml")
	pwFile := filepath.Join(dir, "web.password")
	if err := os.WriteFile(pwFile, []byte(webPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "lb1.toml")
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, fmt.Sprintf("web_user = %q\nweb_password_file = %q\n", webUser, pwFile)...)
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b := upBench(t, filepath.Join(dir, "bench.toml"))
	lbNS, clientNS := b.Namespace("lb1"), b.Namespace("client")
	startHTTPIn(t, b.Namespace("s1"), ":80", "s1")
	s2 := startHTTPIn(t, b.Namespace("s2"), ":80", "s2")
	shots := artifactDir(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitHC := func(server, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var hc []control.HCResult
			ulbadm(t, webSocket, &hc, "show-hc-result", "-g", "web", server)
			if len(hc) == 1 && hc[0].State == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("show-hc-result %s: %+v, want %s", server, hc, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitHC(webS1, control.HealthUp)
	waitHC(webS2, control.HealthUp)

	// Chromium in lb1's namespace, headless, with a profile of its own.
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumIn(t, lbNS)),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1200, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		bcancel()
		acancel()
		// Every process of the browser is gone (or is killed now and reported).
		deadline := time.Now().Add(10 * time.Second)
		for {
			left := chromiumsIn(lbNS)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				for _, pid := range left {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				t.Errorf("chromium processes %v outlived the test; killed", left)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 30*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// The first action binds the browser's life to bctx (not to a step's timeout).
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if pids := chromiumsIn(lbNS); len(pids) == 0 {
		t.Fatalf("no chromium process in %s", lbNS)
	} else {
		t.Logf("chromium in %s: pids %v", lbNS, pids)
	}

	// The login: a CDP auth handler answers the Basic challenge of /login with the
	// configured credential, as an operator answers the browser's dialog. With the
	// Fetch domain on, every request pauses until it is continued.
	var authAsked sync.Once
	asked := make(chan struct{})
	paused := chromedp.Events(bctx, fetch.RequestPaused)
	auth := chromedp.Events(bctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			go chromedp.Call(bctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auth {
			if err != nil {
				return
			}
			authAsked.Do(func() { close(asked) })
			go chromedp.Call(bctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: webUser, Password: webPass}})
		}
	}()
	n := 0
	shot := func(name string) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 30*time.Second)
		defer scancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		n++
		p := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", n, name))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	eval := func(js string, opts ...chromedp.EvaluateOption) (string, error) {
		ectx, ecancel := context.WithTimeout(bctx, 5*time.Second)
		defer ecancel()
		return chromedp.Run(ectx, chromedp.Evaluate[string](js, opts...))
	}
	// waitPage polls a JavaScript condition of the page until it is true.
	waitPage := func(what, js string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := eval(`String(!!(` + js + `))`)
			if err == nil && got == "true" {
				return
			}
			if time.Now().After(deadline) {
				state, _ := eval(`document.getElementById("rules").innerText + "\n" + document.getElementById("error").innerText`)
				t.Fatalf("the page does not show %s (%s, %v):\n%s", what, js, err, state)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	row := func(server string) string {
		return fmt.Sprintf(`document.querySelector('#rule-web tr[data-server="%s"]')`, server)
	}
	ruleIs := func(colour string) string {
		return fmt.Sprintf(`document.querySelector("#rule-web")?.dataset.colour === %q`, colour)
	}
	serverIs := func(server, health, admin, colour string) string {
		return fmt.Sprintf(`(r => !!r && r.dataset.health === %q && r.dataset.admin === %q && r.classList.contains(%q))(%s)`,
			health, admin, colour, row(server))
	}

	yes := true
	step("open the page", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes})
		return chromedp.Void{}, err
	}, chromedp.Navigate("http://"+webAddr+"/login"))
	select {
	case <-asked:
	default:
		t.Fatal("/login did not ask for the credential")
	}
	waitPage("the login", `document.body.dataset.user === "`+webUser+`"`)
	waitPage("the live event stream", `document.getElementById("live").textContent === "live"`)
	waitPage("both servers up, the rule green", ruleIs("green")+" && "+serverIs(webS1, "up", "enabled", "green")+" && "+serverIs(webS2, "up", "enabled", "green"))
	waitPage("the VRRP instance master", `document.querySelector("#router-vip")?.dataset.state === "master"`)
	shot("all-up")

	// s2's web server stops: its health check fails, the page turns it red and the rule
	// yellow, from the health event, and lists the event.
	s2.stop()
	waitPage("s2 down, the rule yellow", ruleIs("yellow")+" && "+serverIs(webS2, "down", "enabled", "red")+" && "+serverIs(webS1, "up", "enabled", "green"))
	waitPage("the health event", `document.getElementById("events").innerText.includes("health web/`+webS2+`: up → down")`)
	shot("s2-down")
	s2.start(t)
	waitPage("s2 up again, the rule green", ruleIs("green")+" && "+serverIs(webS2, "up", "enabled", "green"))
	waitPage("the health event", `document.getElementById("events").innerText.includes("health web/`+webS2+`: down → up")`)
	shot("s2-up-again")

	// Offline: s2 leaves the rotation.
	step("click offline", chromedp.Click(chromedp.CSS(`#rule-web tr[data-server="`+webS2+`"] button[data-action="offline"]`)))
	waitPage("s2 offline, the rule blue", ruleIs("blue")+" && "+serverIs(webS2, "up", "disabled", "blue"))
	waitPage("the server event", `document.getElementById("events").innerText.includes("server web/`+webS2+`: enabled → disabled")`)
	shot("s2-offline")
	var servers []control.ServerInfo
	ulbadm(t, webSocket, &servers, "show-server", "web")
	states := map[string]string{}
	for _, s := range servers {
		states[s.Endpoint()] = s.State
	}
	if states[webS1] != control.ServerEnabled || states[webS2] != control.ServerDisabled {
		t.Fatalf("show-server after offline: %v", states)
	}
	const conns = 20
	if got := askVIP(t, clientNS, conns); got["s1"] != conns {
		t.Fatalf("after offline, %d new connections landed %v, want all on s1", conns, got)
	}

	// Online: back in rotation, both take new connections.
	step("click online", chromedp.Click(chromedp.CSS(`#rule-web tr[data-server="`+webS2+`"] button[data-action="online"]`)))
	waitPage("s2 online, the rule green", ruleIs("green")+" && "+serverIs(webS2, "up", "enabled", "green"))
	shot("s2-online")
	ulbadm(t, webSocket, &servers, "show-server", "web")
	for _, s := range servers {
		if s.State != control.ServerEnabled {
			t.Errorf("show-server after online: %s %s", s.Endpoint(), s.State)
		}
	}
	if got := askVIP(t, clientNS, conns); got["s1"] == 0 || got["s2"] == 0 {
		t.Errorf("after online, %d new connections landed %v, want both servers", conns, got)
	}
	// The counters: the page's periodic refresh shows the rule's 2*conns connections.
	waitPage("the connection counters", fmt.Sprintf(`document.querySelector("#rule-web .conns")?.textContent.endsWith(" %d total")`, 2*conns))
	shot("after-traffic")

	// Another site (another port of the same host: same-site, not same-origin) posts
	// to the page's action with the browser's cached credential: refused.
	evil := startHTTPIn(t, lbNS, "127.0.0.1:9471", "another site")
	defer evil.stop()
	step("visit another site", chromedp.Navigate("http://127.0.0.1:9471/"))
	status, err := eval(`fetch("http://`+webAddr+`/api/server/offline", {method: "POST", mode: "no-cors", credentials: "include",
		body: JSON.stringify({rule: "web", server: "`+webS2+`"})}).then(r => r.type + " " + r.status, e => "refused: " + e)`, chromedp.EvalAwaitPromise)
	if err != nil {
		t.Fatalf("cross-origin POST: %v", err)
	}
	t.Logf("cross-origin POST from http://127.0.0.1:9471: %s", status)
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, _ := os.ReadFile(b.LogPath("ulbd"))
		refused := false
		for line := range bytes.Lines(log) {
			refused = refused || bytes.Contains(line, []byte("path=/api/server/offline")) &&
				bytes.Contains(line, []byte("status=403")) && bytes.Contains(line, []byte("cross-origin request refused"))
		}
		if refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ulbd did not log the refusal of the cross-origin POST (%s):\n%s", status, tail(string(log), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ulbadm(t, webSocket, &servers, "show-server", "web")
	for _, s := range servers {
		if s.State != control.ServerEnabled {
			t.Errorf("a cross-origin POST changed %s to %s", s.Endpoint(), s.State)
		}
	}
}
