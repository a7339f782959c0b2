package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ulb/internal/testenv"
)

// buildUlbd builds the command into a temporary directory.
func buildUlbd(t *testing.T) string {
	t.Helper()
	testenv.NeedTool(t, "go")
	bin := filepath.Join(t.TempDir(), "ulbd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestUlbdCommand(t *testing.T) {
	bin := buildUlbd(t)
	tests := []struct {
		name      string
		args      []string
		status    int
		stdout    string   // exact, unless stdoutPfx is set
		stdoutPfx string   // prefix
		stderr    []string // exact lines; nil: not checked line by line
		stderrHas []string // substrings
	}{
		{name: "check good", args: []string{"-check", "-c", "testdata/good.toml"},
			stdout: "testdata/good.toml: ok\n", stderr: []string{}},
		{name: "check bad", args: []string{"-check", "-c", "testdata/bad.toml"}, status: 1,
			stderr: []string{
				`testdata/bad.toml:9: duplicate port name "outside" (first defined at line 4)`,
				`testdata/bad.toml:11: port "outside": address 198.51.100.20/24 overlaps 198.51.100.10/24 of port "outside" (line 6): ports must be on different networks`,
				`testdata/bad.toml:15: route to 0.0.0.0/0: via 192.0.2.1 is not on a connected network of any port; add port = "NAME" to reach it through a given port`,
				`testdata/bad.toml:17: healthcheck "web-tcp" needs a test (ping, tcp, udp, http, agent, script)`,
			}},
		{name: "check missing", args: []string{"-check", "-c", "testdata/none.toml"}, status: 1,
			stderrHas: []string{"testdata/none.toml", "no such file"}},
		{name: "version", args: []string{"-version"}, stdoutPfx: "ulbd devel (go"},
		{name: "bad flag", args: []string{"-bogus"}, status: 2, stderrHas: []string{"flag provided but not defined: -bogus"}},
		{name: "extra argument", args: []string{"-check", "x.toml"}, status: 2, stderrHas: []string{`unexpected argument "x.toml"`}},
		{name: "bad log level", args: []string{"-log-level", "loud", "-check"}, status: 2, stderrHas: []string{`log_level "loud"`}},
		{name: "bad log format", args: []string{"-log-format", "xml", "-check"}, status: 2,
			stderrHas: []string{`ulbd: -log-format "xml": want text or json`, "Usage of ulbd"}},
		{name: "run refused config, text", args: []string{"-log-format", "text", "-c", "testdata/bad.toml"}, status: 1,
			stderrHas: []string{`level=ERROR msg="configuration refused" issue="testdata/bad.toml:9: duplicate port name`}},
		{name: "run refused config", args: []string{"-c", "testdata/bad.toml"}, status: 1,
			stderrHas: []string{`level=ERROR msg="configuration refused" issue="testdata/bad.toml:17: healthcheck \"web-tcp\" needs a test (ping, tcp, udp, http, agent, script)"`}},
		// The host check runs before the router and refuses devices that do not exist;
		// it only reads the host since there is nothing to fix on a missing device.
		{name: "run missing devices", args: []string{"-c", "testdata/good.toml"}, status: 1,
			stderrHas: []string{
				`finding="device ulbt-nodev0 does not exist in this network namespace"`,
				`finding="device ulbt-nodev1 does not exist in this network namespace"`,
				`msg="host not ready: fix the fatal findings above"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			status := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				status = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tt.status {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", status, tt.status, stdout.String(), stderr.String())
			}
			if tt.stdoutPfx != "" {
				if !strings.HasPrefix(stdout.String(), tt.stdoutPfx) {
					t.Errorf("stdout %q, want prefix %q", stdout.String(), tt.stdoutPfx)
				}
			} else if stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if tt.stderr != nil {
				got := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
				if stderr.Len() == 0 {
					got = []string{}
				}
				if strings.Join(got, "\n") != strings.Join(tt.stderr, "\n") {
					t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.stderr, "\n"))
				}
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}

// With -log-format json every line ulbd logs is one JSON object with slog's keys.
func TestLogFormatJSON(t *testing.T) {
	bin := buildUlbd(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-log-format", "json", "-c", "testdata/bad.toml")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("ulbd ran a refused configuration")
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want one a refused issue:\n%s", len(lines), stderr.String())
	}
	for _, line := range lines {
		var rec struct {
			Time  time.Time `json:"time"`
			Level string    `json:"level"`
			Msg   string    `json:"msg"`
			Issue string    `json:"issue"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		if rec.Time.IsZero() || rec.Level != "ERROR" || rec.Msg != "configuration refused" || !strings.HasPrefix(rec.Issue, "testdata/bad.toml:") {
			t.Errorf("line %q: decoded %+v", line, rec)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader in different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
