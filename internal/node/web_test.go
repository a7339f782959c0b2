package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ulb/balancer"
	"ulb/balancer/health"
	"ulb/router/control"
	"ulb/vrrp"
)

const (
	webTestUser = "admin"
	webTestPass = "s3cret pass:word"
)

var (
	webS1 = netip.MustParseAddr("203.0.113.201")
	webS2 = netip.MustParseAddr("203.0.113.202")
)

// webSources is a balancer with rule web (group web: s1, s2 on port 80), a health check
// of both, a VRRP instance and an events hub.
func webSources(t *testing.T) Sources {
	t.Helper()
	b := balancer.New(balancer.Config{})
	err := b.Set([]balancer.RuleConfig{{Name: "web", VIP: netip.MustParseAddr("198.51.100.100"), PortLo: 80, PortHi: 80,
		Proto: balancer.ProtoTCP, PMask: balancer.NoPersistence, Enabled: true, Group: "web",
		Servers: []balancer.ServerConfig{{Addr: webS1, Port: 80, Weight: 1}, {Addr: webS2, Port: 80, Weight: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	return Sources{
		Status:   fakeStatus{control.StatsInfo{Uptime: int64(time.Minute)}},
		Balancer: b,
		VRRP:     fakeVRRP{{Name: "vip", VRID: 7, State: vrrp.Master, Priority: 150, BasePriority: 150}},
		Health: fakeHealth{
			{Target: health.Target{Group: "web", Addr: webS1, Port: 80}, Check: "web-http", Test: "http", State: health.Up,
				LastResult: "ok", RTT: 800 * time.Microsecond, Load: -1, Last: time.Unix(1700000000, 0)},
			{Target: health.Target{Group: "web", Addr: webS2, Port: 80}, Check: "web-http", Test: "http", State: health.Up,
				LastResult: "ok", Load: -1},
		},
		Events: control.NewEvents(nil),
	}
}

func newWebTest(t *testing.T, s Sources, user, pass string) *httptest.Server {
	t.Helper()
	h, err := WebHandler(s, WebOptions{Hostname: "lb1", User: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, srv *httptest.Server, path string, auth bool, out any) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if auth {
		req.SetBasicAuth(webTestUser, webTestPass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %s: %v", path, resp.Status, err)
		}
	}
	return resp
}

func webCSRF(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	var s webSession
	if resp := getJSON(t, srv, webSessionPath, true, &s); resp.StatusCode != http.StatusOK || s.CSRF == "" || s.User != webTestUser {
		t.Fatalf("session with credentials: %s %+v", resp.Status, s)
	}
	return s.CSRF
}

// post sends an action as the page does, changed by edit.
func post(t *testing.T, srv *httptest.Server, method, action, body string, edit func(*http.Request)) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+webActionPath+action, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if edit != nil {
		edit(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e webError
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error, resp.Header
	}
	return resp.StatusCode, string(data), resp.Header
}

func adminState(t *testing.T, b *balancer.Balancer, addr netip.Addr) string {
	t.Helper()
	for _, si := range b.Servers() {
		if si.Addr == addr {
			return serverStateName(si.State)
		}
	}
	t.Fatalf("no server %s", addr)
	return ""
}

// Every refusal of a state-changing request, each with its status, and none changes
// the server; then the request done right changes it.
func TestWebActionRefusals(t *testing.T) {
	s := webSources(t)
	srv := newWebTest(t, s, webTestUser, webTestPass)
	tok := webCSRF(t, srv)
	body := `{"rule": "web", "server": "203.0.113.201:80"}`
	good := func(r *http.Request) {
		r.SetBasicAuth(webTestUser, webTestPass)
		r.Header.Set(webCSRFHeader, tok)
	}
	with := func(fns ...func(*http.Request)) func(*http.Request) {
		return func(r *http.Request) {
			good(r)
			for _, fn := range fns {
				fn(r)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		method string
		edit   func(*http.Request)
		code   int
		want   string
	}{
		{"no auth", http.MethodPost, func(r *http.Request) { r.Header.Set(webCSRFHeader, tok) }, http.StatusUnauthorized, "log in first"},
		{"wrong password", http.MethodPost, with(func(r *http.Request) { r.SetBasicAuth(webTestUser, "s3cret pass:wordX") }), http.StatusUnauthorized, "wrong user or password"},
		{"wrong user", http.MethodPost, with(func(r *http.Request) { r.SetBasicAuth("root", webTestPass) }), http.StatusUnauthorized, "wrong user or password"},
		{"not basic", http.MethodPost, with(func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") }), http.StatusUnauthorized, "wrong user or password"},
		{"no token", http.MethodPost, with(func(r *http.Request) { r.Header.Del(webCSRFHeader) }), http.StatusForbidden, "no CSRF token"},
		{"wrong token", http.MethodPost, with(func(r *http.Request) { r.Header.Set(webCSRFHeader, tok[:len(tok)-1]+"x") }), http.StatusForbidden, "wrong CSRF token"},
		{"cross-site fetch", http.MethodPost, with(func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }), http.StatusForbidden, `Sec-Fetch-Site is "cross-site"`},
		{"same-site fetch", http.MethodPost, with(func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }), http.StatusForbidden, "cross-origin"},
		{"cross origin", http.MethodPost, with(func(r *http.Request) {
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Set("Origin", "http://evil.example")
		}), http.StatusForbidden, `Origin "http://evil.example" is not`},
		{"other port", http.MethodPost, with(func(r *http.Request) {
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Set("Origin", "http://127.0.0.1:1")
		}), http.StatusForbidden, "cross-origin"},
		{"https origin", http.MethodPost, with(func(r *http.Request) {
			r.Header.Set("Origin", strings.Replace(srv.URL, "http:", "https:", 1))
		}), http.StatusForbidden, "cross-origin"},
		{"no origin", http.MethodPost, with(func(r *http.Request) {
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Del("Origin")
		}), http.StatusForbidden, "neither Origin nor Sec-Fetch-Site"},
		{"GET", http.MethodGet, good, http.StatusMethodNotAllowed, "POST only"},
		{"PUT", http.MethodPut, good, http.StatusMethodNotAllowed, "POST only"},
		{"bad body", http.MethodPost, good, http.StatusBadRequest, "want a JSON body"},
	} {
		b := body
		if tc.name == "bad body" {
			b = "rule=web"
		}
		code, got, hdr := post(t, srv, tc.method, "offline", b, tc.edit)
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, code, got, tc.code, tc.want)
		}
		if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), `Basic realm="ulb lb1"`) {
			t.Errorf("%s: 401 without a Basic challenge: %q", tc.name, hdr.Get("WWW-Authenticate"))
		}
		if code == http.StatusMethodNotAllowed && hdr.Get("Allow") != http.MethodPost {
			t.Errorf("%s: 405 with Allow %q", tc.name, hdr.Get("Allow"))
		}
		if st := adminState(t, s.Balancer, webS1); st != control.ServerEnabled {
			t.Fatalf("%s: the server became %s", tc.name, st)
		}
	}
	if code, got, _ := post(t, srv, http.MethodPost, "halt", body, good); code != http.StatusNotFound {
		t.Errorf("unknown action: %d %s", code, got)
	}
	if code, got, _ := post(t, srv, http.MethodPost, "offline", `{"rule": "web", "server": "203.0.113.99:80"}`, good); code != http.StatusBadRequest || !strings.Contains(got, "no server 203.0.113.99:80") {
		t.Errorf("unknown server: %d %s", code, got)
	}

	// Done right: the control verbs' code runs, and says so on the events hub.
	sub := s.Events.Subscribe(control.WatchArgs{}, 0)
	defer sub.Close()
	for _, step := range []struct{ action, state string }{
		{"offline", control.ServerDisabled}, {"drain", control.ServerDraining}, {"online", control.ServerEnabled},
	} {
		code, got, _ := post(t, srv, http.MethodPost, step.action, body, good)
		var res webActionResult
		if code != http.StatusOK || json.Unmarshal([]byte(got), &res) != nil || len(res.Servers) != 1 || res.Servers[0].State != step.state {
			t.Fatalf("%s: %d %s", step.action, code, got)
		}
		if st := adminState(t, s.Balancer, webS1); st != step.state {
			t.Fatalf("%s: server %s, want %s", step.action, st, step.state)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ev, err := sub.Next(ctx)
		cancel()
		if err != nil || ev.Kind != control.EventServer || ev.Name != "web/203.0.113.201:80" || ev.To != step.state ||
			ev.Reason != webActions[step.action]+" from the web page, user admin" {
			t.Fatalf("%s: event %+v, %v", step.action, ev, err)
		}
	}
	// A change to the state the server already has publishes nothing.
	if code, got, _ := post(t, srv, http.MethodPost, "online", body, good); code != http.StatusOK {
		t.Fatalf("online again: %d %s", code, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if ev, err := sub.Next(ctx); err == nil {
		t.Errorf("online of an enabled server published %+v", ev)
	}
}

// Without a credential the page is read-only: actions are 403 (even with a Basic
// header and a token), the session says so and has no token, /login is refused, and
// GET still answers.
func TestWebReadOnly(t *testing.T) {
	s := webSources(t)
	srv := newWebTest(t, s, "", "")
	var sess webSession
	if resp := getJSON(t, srv, webSessionPath, true, &sess); resp.StatusCode != http.StatusOK || sess.Auth || sess.CSRF != "" || sess.User != "" {
		t.Errorf("session: %s %+v", resp.Status, sess)
	}
	code, got, _ := post(t, srv, http.MethodPost, "offline", `{"rule": "web", "server": "203.0.113.201:80"}`, func(r *http.Request) {
		r.SetBasicAuth(webTestUser, webTestPass)
		r.Header.Set(webCSRFHeader, "anything")
	})
	if code != http.StatusForbidden || !strings.Contains(got, "read-only") {
		t.Errorf("action: %d %s", code, got)
	}
	if code, got, _ := post(t, srv, http.MethodGet, "offline", "", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET action: %d %s", code, got)
	}
	if resp := getJSON(t, srv, webLoginPath, false, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login: %s", resp.Status)
	}
	if st := adminState(t, s.Balancer, webS1); st != control.ServerEnabled {
		t.Errorf("server %s", st)
	}
	var st webStatus
	if resp := getJSON(t, srv, webStatusPath, false, &st); resp.StatusCode != http.StatusOK || st.Auth || len(st.Rules) != 1 {
		t.Errorf("status: %s %+v", resp.Status, st)
	}
}

// The session hands out the token only with the credential; /login challenges until
// it has it, then sends the browser back to the page.
func TestWebSessionAndLogin(t *testing.T) {
	srv := newWebTest(t, webSources(t), webTestUser, webTestPass)
	var sess webSession
	if resp := getJSON(t, srv, webSessionPath, false, &sess); resp.StatusCode != http.StatusOK || !sess.Auth || sess.CSRF != "" {
		t.Errorf("session without credentials: %s %+v", resp.Status, sess)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+webSessionPath, nil)
	req.SetBasicAuth(webTestUser, "wrong")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("session with a wrong password: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	tok := webCSRF(t, srv)
	if len(tok) != 64 {
		t.Errorf("token %q: want 32 random bytes in hex", tok)
	}
	if resp := getJSON(t, srv, webLoginPath, false, nil); resp.StatusCode != http.StatusUnauthorized ||
		resp.Header.Get("WWW-Authenticate") != `Basic realm="ulb lb1", charset="UTF-8"` {
		t.Errorf("login without credentials: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	client := *srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ = http.NewRequest(http.MethodGet, srv.URL+webLoginPath, nil)
	req.SetBasicAuth(webTestUser, webTestPass)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("login: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	// Another process has another token.
	if other := webCSRF(t, newWebTest(t, webSources(t), webTestUser, webTestPass)); other == tok {
		t.Errorf("two handlers share the token %s", tok)
	}
}

// /api/status: the rule's colour follows its servers' health and admin states.
func TestWebStatusColours(t *testing.T) {
	s := webSources(t)
	b := s.Balancer
	srv := newWebTest(t, s, webTestUser, webTestPass)
	status := func() webRule {
		t.Helper()
		var st webStatus
		if resp := getJSON(t, srv, webStatusPath, false, &st); resp.StatusCode != http.StatusOK || len(st.Rules) != 1 {
			t.Fatalf("status: %s %+v", resp.Status, st)
		}
		if len(st.Routers) != 1 || st.Routers[0].State != "master" || st.Routers[0].Priority != 150 || st.Routers[0].VRID != 7 {
			t.Errorf("routers %+v", st.Routers)
		}
		if st.Hostname != "lb1" || !st.Auth {
			t.Errorf("hostname %q auth %v", st.Hostname, st.Auth)
		}
		return st.Rules[0]
	}
	colours := func(r webRule) string {
		out := r.Colour + ":"
		for _, s := range r.Servers {
			out += " " + s.Endpoint + "=" + s.Colour + "/" + s.Health + "/" + s.Admin
		}
		return out
	}
	r := status()
	if r.VIP != "198.51.100.100" || r.Ports != "80" || r.Protocol != "tcp" || len(r.Servers) != 2 {
		t.Fatalf("rule %+v", r)
	}
	s1 := r.Servers[0]
	if s1.Check != "web-http" || s1.LastResult != "ok" || s1.RTT != 800 || s1.Weight != 1 || r.Servers[1].Weight != 2 || s1.LastCheck.IsZero() {
		t.Errorf("server %+v", s1)
	}
	steps := []struct {
		name string
		do   func()
		want string
	}{
		// The balancer has no verdict yet (unknown): the check's up shows.
		{"all up", func() {}, "green: 203.0.113.201:80=green/up/enabled 203.0.113.202:80=green/up/enabled"},
		{"one down", func() { b.SetHealth("web", webS2, 80, false) }, "yellow: 203.0.113.201:80=green/up/enabled 203.0.113.202:80=red/down/enabled"},
		{"all down", func() { b.SetHealth("web", webS1, 80, false) }, "red: 203.0.113.201:80=red/down/enabled 203.0.113.202:80=red/down/enabled"},
		{"back up", func() { b.SetHealth("web", webS1, 80, true); b.SetHealth("web", webS2, 80, true) }, "green: 203.0.113.201:80=green/up/enabled 203.0.113.202:80=green/up/enabled"},
		{"one offline", func() { b.DisableServer("web", webS1, 80) }, "blue: 203.0.113.201:80=blue/up/disabled 203.0.113.202:80=green/up/enabled"},
		{"one draining, other down", func() { b.DrainServer("web", webS1, 80); b.SetHealth("web", webS2, 80, false) },
			"red: 203.0.113.201:80=blue/up/draining 203.0.113.202:80=red/down/enabled"},
		{"one draining", func() { b.SetHealth("web", webS2, 80, true) }, "blue: 203.0.113.201:80=blue/up/draining 203.0.113.202:80=green/up/enabled"},
		{"rule disabled", func() { b.EnableServer("web", webS1, 80); b.DisableRule("web") }, "blue: 203.0.113.201:80=green/up/enabled 203.0.113.202:80=green/up/enabled"},
	}
	for _, st := range steps {
		st.do()
		if got := colours(status()); got != st.want {
			t.Errorf("%s: %s, want %s", st.name, got, st.want)
		}
	}
}

// /events streams the hub's events as Server-Sent Events, one data line of JSON each.
func TestWebEvents(t *testing.T) {
	s := webSources(t)
	srv := newWebTest(t, s, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+webEventsPath, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	// The subscription is made before the first bytes are sent.
	if line, err := rd.ReadString('\n'); err != nil || line != "retry: 2000\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	s.Events.Publish(control.Event{Kind: control.EventHealth, Name: "web/203.0.113.202:80", From: "up", To: "down", Reason: "fail: connection refused"})
	var id, data string
	for data == "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = strings.TrimSpace(v)
		}
	}
	var ev control.Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Kind != control.EventHealth || ev.To != "down" || id != "1" {
		t.Errorf("event id %s %s: %+v %v", id, data, ev, err)
	}
	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for s.Events.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived the request")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The page and its files are served from the embedded copy, with the headers that keep
// other sites from framing or scripting it.
func TestWebFiles(t *testing.T) {
	srv := newWebTest(t, webSources(t), "", "")
	for path, typ := range map[string]string{"/": "text/html", "/static/style.css": "text/css", "/static/app.js": "text/javascript"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), typ) || len(body) < 100 {
			t.Errorf("%s: %s %q, %d bytes", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
	if resp := getJSON(t, srv, "/nothing", false, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing: %s", resp.Status)
	}
}

// The control verbs publish the same EventServer as the page (their reason is the verb
// alone), and only for a server whose state changed; a group name selects every rule
// of the group, with one event per server.
func TestServerVerbEvents(t *testing.T) {
	s := webSources(t)
	s.Now = time.Now
	sub := s.Events.Subscribe(control.WatchArgs{Kind: control.EventServer}, 0)
	defer sub.Close()
	next := func() (control.Event, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		return sub.Next(ctx)
	}
	if _, err := s.setServerState(control.VerbDrainServer, control.ServerArgs{Group: "web", Server: "203.0.113.202"}, ""); err != nil {
		t.Fatal(err)
	}
	ev, err := next()
	if err != nil || ev.Name != "web/203.0.113.202:80" || ev.From != control.ServerEnabled || ev.To != control.ServerDraining || ev.Reason != "drain-server" {
		t.Errorf("drain-server: %+v %v", ev, err)
	}
	if ev, err := next(); err == nil {
		t.Errorf("a second event %+v", ev)
	}
	if _, err := s.setServerState(control.VerbEnableServer, control.ServerArgs{Server: "203.0.113.201:80"}, ""); err != nil {
		t.Fatal(err)
	}
	if ev, err := next(); err == nil {
		t.Errorf("enable-server of an enabled server published %+v", ev)
	}
	if _, err := s.setServerState("halt-server", control.ServerArgs{Server: "203.0.113.201:80"}, ""); err == nil {
		t.Error("an unknown verb was accepted")
	}
}
