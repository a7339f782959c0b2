package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"ulb/config"
	"ulb/router/control"
)

// The web status page: Loadbalancer.org's "System Overview" for ulb, served on the
// [metrics] listener beside /metrics. The page (web/index.html, web/style.css,
// web/app.js) renders GET /api/status and refreshes it on every event of GET /events
// (Server-Sent Events from the same hub as ulbadm watch). Its buttons POST to
// /api/server/{offline,online,drain}, which run the same code as the disable-server,
// enable-server and drain-server verbs.
//
// Security. Without a credential ([metrics] web_user and web_password_file) the page
// is read-only: it has no buttons and the POST endpoints answer 403. With one, a
// state-changing request must
//   - be a POST (GET and HEAD never change state; anything else on an action is 405),
//   - carry HTTP Basic credentials that match (401 otherwise),
//   - come from the page's own origin (Sec-Fetch-Site or Origin; 403 otherwise),
//   - carry the CSRF token in the X-ULB-CSRF header (403 otherwise): a random value
//     made when ulbd starts, which the page gets from GET /api/session only when that
//     request carries the credentials.
// Credentials and token are compared in constant time.

//go:embed web
var webFiles embed.FS

// Paths of the web status page.
const (
	webStatusPath  = "/api/status"
	webSessionPath = "/api/session"
	webEventsPath  = "/events"
	webLoginPath   = "/login"
	webActionPath  = "/api/server/" // + offline, online or drain
	webStaticPath  = "/static/"
	// webCSRFHeader carries the CSRF token of state-changing requests.
	webCSRFHeader = "X-ULB-CSRF"
)

// webActions maps the page's actions to the control verbs they run.
var webActions = map[string]string{
	"offline": control.VerbDisableServer,
	"online":  control.VerbEnableServer,
	"drain":   control.VerbDrainServer,
}

// webKeepalive is how often /events sends a comment line when nothing happens, so that
// proxies and the browser keep the stream open and a gone client is noticed.
const webKeepalive = 15 * time.Second

// webMaxBody bounds the body of an action request.
const webMaxBody = 4096

// WebOptions configure the web status page.
type WebOptions struct {
	// Hostname is shown in the page's title.
	Hostname string
	// User and Password are the credential of the state-changing requests; empty User:
	// the page is read-only.
	User, Password string
	Logger         *slog.Logger
}

// webHandler is the web status page of a running ulbd: its hostname, and the
// credential of [metrics] (the password file read now).
func webHandler(cfg *config.Config, s Sources, logger *slog.Logger) (http.Handler, error) {
	o := WebOptions{Hostname: cfg.Hostname, Logger: logger}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if cfg.Metrics.WebUser != "" {
		pw, err := config.ReadWebPassword(cfg.Metrics.WebPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("web_password_file: %w", err)
		}
		o.User, o.Password = cfg.Metrics.WebUser, pw
	}
	return WebHandler(s, o)
}

// webUI serves the web status page.
type webUI struct {
	s     Sources
	o     WebOptions
	start time.Time
	// userSum and passSum are SHA-256 digests of the credential: comparing digests of
	// equal length keeps the comparison's time independent of where and whether the
	// lengths differ.
	userSum, passSum [sha256.Size]byte
	csrf             string // hex of 32 random bytes, per process
}

// WebHandler returns the handler of the web status page, answering from s.
func WebHandler(s Sources, o WebOptions) (http.Handler, error) {
	if s.Now == nil {
		s.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.User != "" && o.Password == "" {
		return nil, errors.New("web page: a user without a password")
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("web page: CSRF token: %w", err)
	}
	w := &webUI{s: s, o: o, start: s.Now(), csrf: hex.EncodeToString(tok),
		userSum: sha256.Sum256([]byte(o.User)), passSum: sha256.Sum256([]byte(o.Password))}
	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", w.index)
	mux.Handle("GET "+webStaticPath, http.StripPrefix(webStaticPath, http.FileServerFS(static)))
	mux.HandleFunc("GET "+webStatusPath, w.status)
	mux.HandleFunc("GET "+webSessionPath, w.session)
	mux.HandleFunc("GET "+webLoginPath, w.login)
	mux.HandleFunc("GET "+webEventsPath, w.events)
	mux.HandleFunc(webActionPath+"{action}", w.action)
	return securityHeaders(mux), nil
}

// securityHeaders adds the headers every answer of the page carries: the page runs
// only its own script and style and may not be framed (RFC 7034, and CSP's
// frame-ancestors), so that no other site can overlay its buttons; nothing is
// sniffed into another type.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func (w *webUI) index(rw http.ResponseWriter, r *http.Request) {
	data, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Write(data)
}

// writeJSON answers v as JSON with status code.
func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

// webError is the body of a refused request.
type webError struct {
	Error string `json:"error"`
}

func (w *webUI) refuse(rw http.ResponseWriter, r *http.Request, code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if code == http.StatusUnauthorized {
		w.challenge(rw)
	}
	if code != http.StatusUnauthorized || r.Header.Get("Authorization") != "" {
		w.o.Logger.Warn("web page: request refused", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "status", code, "why", msg)
	}
	writeJSON(rw, code, webError{Error: msg})
}

// challenge asks for Basic credentials: RFC 9110 section 15.5.2, a 401 response MUST
// carry a WWW-Authenticate challenge; RFC 7617 section 2 (realm) and 2.1 (charset).
func (w *webUI) challenge(rw http.ResponseWriter) {
	realm := "ulb"
	if w.o.Hostname != "" {
		realm += " " + w.o.Hostname
	}
	rw.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", realm))
}

// authorized says whether r carries the configured Basic credentials (RFC 7617
// section 2: "Basic" base64(user-id ":" password)); present says whether it carries an
// Authorization header at all. Both parts are compared in constant time, always both.
func (w *webUI) authorized(r *http.Request) (ok, present bool) {
	if r.Header.Get("Authorization") == "" {
		return false, false
	}
	user, pass, parsed := r.BasicAuth()
	if !parsed || w.o.User == "" {
		return false, true
	}
	us, ps := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	match := subtle.ConstantTimeCompare(us[:], w.userSum[:]) & subtle.ConstantTimeCompare(ps[:], w.passSum[:])
	return match == 1, true
}

// sameOrigin says whether a state-changing request comes from the page itself. Fetch
// Metadata's Sec-Fetch-Site (sent by current browsers) must say "same-origin"; the
// Origin header (RFC 6454 section 7, sent with every POST by browsers), when present,
// must be this server's origin (RFC 6454 section 4: scheme, host and port; the
// listener is plain HTTP). A request with neither is refused: it is not from a browser
// that shows where it comes from, and a script can add the header.
func sameOrigin(r *http.Request) (bool, string) {
	site := r.Header.Get("Sec-Fetch-Site")
	origin := r.Header.Get("Origin")
	if site == "" && origin == "" {
		return false, "neither Origin nor Sec-Fetch-Site says where the request comes from"
	}
	if site != "" && site != "same-origin" {
		return false, fmt.Sprintf("Sec-Fetch-Site is %q, not same-origin", site)
	}
	if origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Scheme != "http" || !strings.EqualFold(u.Host, r.Host) || u.Path != "" {
			return false, fmt.Sprintf("Origin %q is not http://%s", origin, r.Host)
		}
	}
	return true, ""
}

// webSession is the answer of /api/session.
type webSession struct {
	// Auth is true when a credential is configured (the page can log in); User and
	// CSRF are set only for a request that carried it.
	Auth bool   `json:"auth"`
	User string `json:"user,omitempty"`
	CSRF string `json:"csrf,omitempty"`
}

// session tells the page whether it may change state and gives it the CSRF token once
// it has authenticated. A request without credentials is answered, not challenged, so
// that loading the page does not pop up a login dialog; wrong credentials are 401.
func (w *webUI) session(rw http.ResponseWriter, r *http.Request) {
	s := webSession{Auth: w.o.User != ""}
	ok, present := w.authorized(r)
	switch {
	case ok:
		s.User, s.CSRF = w.o.User, w.csrf
	case present && s.Auth:
		w.refuse(rw, r, http.StatusUnauthorized, "wrong user or password")
		return
	}
	writeJSON(rw, http.StatusOK, s)
}

// login challenges for the credential until the browser sends the right one, then sends
// it back to the page (which then finds itself logged in: the browser sends the
// credential with its later requests to the same server).
func (w *webUI) login(rw http.ResponseWriter, r *http.Request) {
	if w.o.User == "" {
		w.refuse(rw, r, http.StatusForbidden, "this ulbd has no web credential ([metrics] web_user and web_password_file): the page is read-only")
		return
	}
	if ok, _ := w.authorized(r); !ok {
		w.refuse(rw, r, http.StatusUnauthorized, "log in with the user and password of [metrics] web_user and web_password_file")
		return
	}
	http.Redirect(rw, r, "/", http.StatusSeeOther)
}

// webAction is the body of an action request: the server (ADDR[:PORT]) and the rule
// or the group whose server it is (neither: every rule), as ulbadm's -r and -g.
type webAction = control.ServerArgs

// webActionResult is the answer of a done action: the servers it matched.
type webActionResult struct {
	Verb    string               `json:"verb"`
	Servers []control.ServerInfo `json:"servers"`
}

// action runs a server verb for the page, after the checks of the package comment.
func (w *webUI) action(rw http.ResponseWriter, r *http.Request) {
	verb, known := webActions[r.PathValue("action")]
	if !known {
		w.refuse(rw, r, http.StatusNotFound, "no action %q: want offline, online or drain", r.PathValue("action"))
		return
	}
	// RFC 9110 section 9.2.1: GET and HEAD are safe and never change state; section
	// 15.5.6: a 405 lists the allowed methods in Allow.
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		w.refuse(rw, r, http.StatusMethodNotAllowed, "%s changes state: POST only", r.URL.Path)
		return
	}
	if w.o.User == "" {
		w.refuse(rw, r, http.StatusForbidden, "this ulbd has no web credential ([metrics] web_user and web_password_file): the page is read-only")
		return
	}
	if ok, present := w.authorized(r); !ok {
		if present {
			w.refuse(rw, r, http.StatusUnauthorized, "wrong user or password")
		} else {
			w.refuse(rw, r, http.StatusUnauthorized, "log in first (HTTP Basic authentication)")
		}
		return
	}
	if ok, why := sameOrigin(r); !ok {
		w.refuse(rw, r, http.StatusForbidden, "cross-origin request refused: %s", why)
		return
	}
	tok := r.Header.Get(webCSRFHeader)
	if tok == "" {
		w.refuse(rw, r, http.StatusForbidden, "no CSRF token: send the one of %s in %s", webSessionPath, webCSRFHeader)
		return
	}
	ts, ws := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(w.csrf))
	if subtle.ConstantTimeCompare(ts[:], ws[:]) != 1 {
		w.refuse(rw, r, http.StatusForbidden, "wrong CSRF token: reload the page")
		return
	}
	var a webAction
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, webMaxBody))
	if err == nil {
		err = json.Unmarshal(body, &a)
	}
	if err != nil {
		w.refuse(rw, r, http.StatusBadRequest, "want a JSON body {\"rule\": RULE, \"server\": \"ADDR:PORT\"}: %v", err)
		return
	}
	if w.s.Balancer == nil {
		w.refuse(rw, r, http.StatusServiceUnavailable, "no balancer")
		return
	}
	servers, err := w.s.setServerState(verb, a, "the web page, user "+w.o.User)
	if err != nil {
		w.refuse(rw, r, http.StatusBadRequest, "%s %s: %v", verb, a.Server, err)
		return
	}
	w.o.Logger.Info("web page: "+verb, "server", a.Server, "rule", a.Rule, "group", a.Group,
		"user", w.o.User, "remote", r.RemoteAddr)
	writeJSON(rw, http.StatusOK, webActionResult{Verb: verb, Servers: servers})
}

// events streams the events hub as Server-Sent Events (WHATWG HTML, "Server-sent
// events"): one "data:" line of the event's JSON, as ulbadm watch -o json prints it,
// with its Seq as the id, and a comment line every webKeepalive.
func (w *webUI) events(rw http.ResponseWriter, r *http.Request) {
	if w.s.Events == nil {
		w.refuse(rw, r, http.StatusServiceUnavailable, "this ulbd publishes no events")
		return
	}
	rc := http.NewResponseController(rw)
	sub := w.s.Events.Subscribe(control.WatchArgs{}, 0)
	defer sub.Close()
	h := rw.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	rw.WriteHeader(http.StatusOK)
	fmt.Fprint(rw, "retry: 2000\n: ulbd events\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	ctx := r.Context()
	for {
		nctx, cancel := context.WithTimeout(ctx, webKeepalive)
		ev, err := sub.Next(nctx)
		cancel()
		switch {
		case err == nil:
			data, merr := json.Marshal(ev)
			if merr != nil {
				return
			}
			if ev.Seq != 0 {
				fmt.Fprintf(rw, "id: %d\n", ev.Seq)
			}
			fmt.Fprintf(rw, "data: %s\n\n", data)
		case ctx.Err() != nil || errors.Is(err, control.ErrSubscriptionClosed):
			return
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprint(rw, ": keepalive\n\n")
		default:
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// The colours of a rule and of a server, after Loadbalancer.org's System Overview.
const (
	webGreen  = "green"  // rule: every server up; server: up (or unknown: it takes flows)
	webYellow = "yellow" // rule: some servers down, others take the flows
	webRed    = "red"    // rule: every server down, or none takes flows; server: down
	webBlue   = "blue"   // rule: disabled, or some servers taken offline by the operator; server: disabled or draining
)

// webStatus is the answer of /api/status, what the page renders.
type webStatus struct {
	Hostname string      `json:"hostname"`
	Time     time.Time   `json:"time"`
	Uptime   int64       `json:"uptime"` // seconds since the page's handler started
	Auth     bool        `json:"auth"`   // a credential is configured: the page can log in
	Rules    []webRule   `json:"rules"`
	Routers  []webRouter `json:"routers"`
}

// webRule is one rule and its servers.
type webRule struct {
	Name        string `json:"name"`
	Enabled     bool   `json:"enabled"`
	VIP         string `json:"vip"`
	Ports       string `json:"ports"`
	Protocol    string `json:"protocol"`
	Algorithm   string `json:"algorithm"`
	Topology    string `json:"topology"`
	ServerGroup string `json:"servergroup"`
	// Colour is webGreen, webYellow, webRed or webBlue; Summary says why in words.
	Colour      string      `json:"colour"`
	Summary     string      `json:"summary"`
	ConnsActive uint64      `json:"conns_active"`
	ConnsTotal  uint64      `json:"conns_total"`
	Servers     []webServer `json:"servers"`
}

// webServer is one server of a rule.
type webServer struct {
	Address         string `json:"address"`
	Port            uint16 `json:"port,omitempty"`
	Endpoint        string `json:"endpoint"` // as ulbadm names it, for the actions
	Weight          int    `json:"weight"`
	EffectiveWeight int    `json:"effective_weight"`
	// Admin is enabled, disabled or draining; Health up, down or unknown (the
	// balancer's view, or the check's while the balancer has none).
	Admin  string `json:"admin"`
	Health string `json:"health"`
	Colour string `json:"colour"`
	// Check, LastResult, RTT (microseconds) and LastCheck are the health check's, when
	// the server has one.
	Check       string    `json:"check,omitempty"`
	LastResult  string    `json:"last_result,omitempty"`
	RTT         int64     `json:"rtt_us,omitempty"`
	LastCheck   time.Time `json:"last_check,omitzero"`
	ConnsActive uint64    `json:"conns_active"`
	ConnsTotal  uint64    `json:"conns_total"`
}

// webRouter is one VRRP instance.
type webRouter struct {
	Name              string   `json:"name"`
	VRID              int      `json:"vrid"`
	Port              string   `json:"port"`
	State             string   `json:"state"`
	Priority          int      `json:"priority"`
	EffectivePriority int      `json:"effective_priority"`
	Master            string   `json:"master,omitempty"`
	Fault             string   `json:"fault,omitempty"`
	Addresses         []string `json:"addresses"`
}

func (w *webUI) status(rw http.ResponseWriter, r *http.Request) {
	st, err := w.snapshot()
	if err != nil {
		w.refuse(rw, r, http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(rw, http.StatusOK, st)
}

// snapshot reads the sources the control verbs read: show-rule, show-server,
// show-stats -r, show-hc-result and show-router.
func (w *webUI) snapshot() (webStatus, error) {
	now := w.s.Now()
	st := webStatus{Hostname: w.o.Hostname, Time: now, Uptime: int64(now.Sub(w.start) / time.Second),
		Auth: w.o.User != "", Rules: []webRule{}, Routers: []webRouter{}}
	if w.s.Status != nil {
		st.Uptime = w.s.Status.Stats().Uptime / int64(time.Second)
	}
	if b := w.s.Balancer; b != nil {
		rules, err := ruleInfos(b, "")
		if err != nil {
			return st, err
		}
		servers, err := serverInfos(b, "", now)
		if err != nil {
			return st, err
		}
		results, err := hcResults(w.s.Health, b, control.ShowHCResultArgs{})
		if err != nil {
			return st, err
		}
		type target struct {
			group string
			addr  string
			port  uint16
		}
		checks := map[target]control.HCResult{}
		for _, hr := range results {
			checks[target{hr.Group, hr.Address, hr.Port}] = hr
		}
		total := map[string]uint64{}
		for _, rs := range b.Stats().Rules {
			total[rs.Name] = rs.Counters.ConnsTotal
		}
		for _, ri := range rules {
			wr := webRule{Name: ri.Name, Enabled: ri.Enabled, VIP: ri.VIP, Ports: ri.Ports, Protocol: ri.Protocol,
				Algorithm: ri.Algorithm, Topology: ri.Topology, ServerGroup: ri.ServerGroup,
				ConnsActive: ri.ConnsActive, ConnsTotal: total[ri.Name], Servers: []webServer{}}
			for _, si := range servers {
				if si.Rule != ri.Name {
					continue
				}
				ws := webServer{Address: si.Address, Port: si.Port, Endpoint: si.Endpoint(), Weight: si.Weight,
					EffectiveWeight: si.EffectiveWeight, Admin: si.State, Health: si.Health,
					ConnsActive: si.ConnsActive, ConnsTotal: si.ConnsTotal}
				if hr, ok := checks[target{si.Group, si.Address, si.Port}]; ok {
					ws.Check, ws.LastResult, ws.RTT, ws.LastCheck = hr.Check, hr.LastResult, hr.RTT, hr.Last
					if ws.Health == control.HealthUnknown {
						ws.Health = hr.State
					}
				}
				ws.Colour = serverColour(ws)
				wr.Servers = append(wr.Servers, ws)
			}
			wr.Colour, wr.Summary = ruleColour(wr)
			st.Rules = append(st.Rules, wr)
		}
	}
	if w.s.VRRP != nil {
		for _, in := range w.s.VRRP.VRRPInfo() {
			ri := routerInfo(in, w.s.VRRP.VRRPPort(in.Name))
			st.Routers = append(st.Routers, webRouter{Name: ri.Name, VRID: ri.VRID, Port: ri.Port, State: ri.State,
				Priority: ri.Priority, EffectivePriority: ri.EffectivePriority, Master: ri.Master, Fault: ri.Fault,
				Addresses: ri.Addresses})
		}
	}
	return st, nil
}

// serverColour: blue when the operator took the server offline (disabled, draining),
// else red when it is down, else green.
func serverColour(s webServer) string {
	switch {
	case s.Admin != control.ServerEnabled:
		return webBlue
	case s.Health == control.HealthDown:
		return webRed
	}
	return webGreen
}

// ruleColour is the rule's colour and why: red when no server takes new flows (all
// down, or none left enabled), else blue when the rule is disabled or the operator took
// some servers offline, else yellow when some are down, else green.
func ruleColour(r webRule) (string, string) {
	var eligible, down, offline int
	for _, s := range r.Servers {
		switch {
		case s.Admin != control.ServerEnabled:
			offline++
		case s.Health == control.HealthDown:
			down++
		default:
			eligible++
		}
	}
	n := len(r.Servers)
	counts := fmt.Sprintf("%d of %d servers take flows", eligible, n)
	if down > 0 {
		counts += fmt.Sprintf(", %d down", down)
	}
	if offline > 0 {
		counts += fmt.Sprintf(", %d offline", offline)
	}
	switch {
	case !r.Enabled:
		return webBlue, "rule disabled; " + counts
	case n == 0:
		return webRed, "no servers"
	case eligible == 0:
		return webRed, counts
	case offline > 0:
		return webBlue, counts
	case down > 0:
		return webYellow, counts
	}
	return webGreen, counts
}
