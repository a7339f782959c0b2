package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ulb/config"
)

// oneArmDSR answers the wizard for a one-arm direct-routing unit: Loadbalancer.org's
// example (the VIP .20, the appliance .21, real servers .50 and .51, the gateway .254)
// on the documentation prefix 198.51.100.0/24.
var oneArmDSR = []string{
	"single", "lb1", "one-arm", "dsr", "eth0", "198.51.100.21/24", "198.51.100.254",
	"web", "198.51.100.20", "80", "tcp",
	"198.51.100.50", "80", "1", "198.51.100.51", "80", "1", "done",
	"tcp", "",
}

// runWizard runs the built ulbadm with args, answers piped to its standard input, and
// ULB_SOCKET naming a socket nobody listens on: the wizard must not need ulbd.
func runWizard(t *testing.T, bin, answers string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBinInput(t, bin, []string{"ULB_SOCKET=" + filepath.Join(t.TempDir(), "none.sock")}, answers, args...)
}

func TestBinaryWizard(t *testing.T) {
	bin := buildUlbadm(t)
	ulbd := filepath.Join(t.TempDir(), "ulbd")
	if out, err := exec.Command("go", "build", "-o", ulbd, "../ulbd").CombinedOutput(); err != nil {
		t.Fatalf("go build ulbd: %v\n%s", err, out)
	}
	file := filepath.Join(t.TempDir(), "etc", "ulb", "ulbd.toml")
	answers := strings.Join(oneArmDSR, "\n") + "\n"

	out, errOut, code := runWizard(t, bin, answers, "wizard", "-o", file)
	if code != 0 || errOut != "" {
		t.Fatalf("wizard: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"Single unit or HA pair (single, pair) [single]: single\n",
		"Its virtual IP address (VIP): 198.51.100.20\n",
		"Wrote " + file + ".\n",
		"ulbd -check -c " + file + "\n",
		"examples/systemd/ulbd.service",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != 1 || cfg.Rules[0].Topology != config.DSR || len(cfg.ServerGroups) != 1 || len(cfg.ServerGroups[0].Servers) != 2 {
		t.Errorf("rules %+v, groups %+v", cfg.Rules, cfg.ServerGroups)
	}
	// ulbd -check, as the next steps say.
	if out, err := exec.Command(ulbd, "-check", "-c", file).CombinedOutput(); err != nil || string(out) != file+": ok\n" {
		t.Errorf("ulbd -check: %v\n%s", err, out)
	}

	// The file exists now: replaced only with -f.
	_, errOut, code = runWizard(t, bin, answers, "wizard", "-o", file)
	if code != 1 || !strings.Contains(errOut, "exists: give -f to replace it") {
		t.Errorf("existing file: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code = runWizard(t, bin, answers, "wizard", "-f", "-o", file); code != 0 {
		t.Errorf("-f: exit %d, stderr %q", code, errOut)
	}

	// Three bad VIPs end the run with exit status 1 and nothing written.
	other := filepath.Join(t.TempDir(), "ulbd.toml")
	bad := strings.Join(append(oneArmDSR[:8:8], "198.51.100.300", "198.51.100.21", "vip"), "\n") + "\n"
	out, errOut, code = runWizard(t, bin, bad, "wizard", "-o", other)
	if want := "ulbadm: wizard: 3 bad answers to \"Its virtual IP address (VIP)\", giving up (nothing written)\n"; code != 1 || errOut != want {
		t.Errorf("bad answers: exit %d, stderr %q, want %q", code, errOut, want)
	}
	if !strings.Contains(out, "  \"198.51.100.300\" is not an IP address") ||
		!strings.Contains(out, "vip 198.51.100.21 is the router's own address") {
		t.Errorf("the reasons are not told:\n%s", out)
	}
	// Standard input ends mid-way: exit 1, nothing written.
	_, errOut, code = runWizard(t, bin, strings.Join(oneArmDSR[:5], "\n")+"\n", "wizard", "-o", other)
	if want := "ulbadm: wizard: standard input ended before an answer to \"This node's address(es) on lan, eth0 (ADDRESS/PREFIX, comma-separated)\" (nothing written)\n"; code != 1 || errOut != want {
		t.Errorf("EOF: exit %d, stderr %q, want %q", code, errOut, want)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written: %v", err)
	}

	// Usage mistakes.
	for _, args := range [][]string{{"wizard", "-x"}, {"wizard", "extra"}, {"-o", "json", "wizard"}} {
		if _, errOut, code := runWizard(t, bin, "", args...); code != 2 || !strings.Contains(errOut, "usage: ulbadm ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}

	// help lists the verb with one line.
	out, _, code = runWizard(t, bin, "", "help")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "wizard") {
			lines = append(lines, l)
		}
	}
	if code != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "  wizard ") {
		t.Errorf("help: exit %d, wizard lines %q", code, lines)
	}
	// help wizard: its usage line.
	if out, _, code = runWizard(t, bin, "", "help", "wizard"); code != 0 || !strings.Contains(out, "wizard [-f] [-o FILE]") {
		t.Errorf("help wizard: exit %d:\n%s", code, out)
	}
}
