package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"ulb/cmd/ulbadm/internal/fakeulbd"
	"ulb/router/control"
)

// buildUlbadm builds the command into a temporary directory.
func buildUlbadm(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ulbadm")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBinInput(t, bin, env, "", args...)
}

// runBinInput runs the built ulbadm with input on its standard input.
func runBinInput(t *testing.T, bin string, env []string, input string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(input)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running ulbadm: %v", err)
	}
	return o.String(), e.String(), code
}

func TestBinaryAgainstControlServer(t *testing.T) {
	bin := buildUlbadm(t)
	sock := fakeulbd.Start(t)
	env := []string{"ULB_SOCKET=" + sock}

	out, errOut, code := runBin(t, bin, env, "show-route")
	want := "PREFIX           VIA           PORT     KIND\n" +
		"0.0.0.0/0        198.51.100.1  outside  static\n" +
		"198.51.100.0/24  -             outside  connected\n" +
		"203.0.113.10/32  -             inside   local\n"
	if code != 0 || errOut != "" || out != want {
		t.Errorf("show-route: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	out, errOut, code = runBin(t, bin, nil, "-s", sock, "show-port", "outside")
	want = "NAME     DEVICE  KIND      MAC                MTU   STATE  ADDRESSES\n" +
		"outside  eth1    afpacket  02:00:00:00:00:01  1500  up     198.51.100.10/24,2001:db8:1::10/64\n"
	if code != 0 || errOut != "" || out != want {
		t.Errorf("show-port outside: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	out, errOut, code = runBin(t, bin, env, "show-neigh")
	want = "PORT     ADDRESS        MAC                STATE       AGE\n" +
		"outside  198.51.100.1   02:00:00:00:01:01  reachable   4s\n" +
		"inside   203.0.113.200  -                  incomplete  0s\n"
	if code != 0 || errOut != "" || out != want {
		t.Errorf("show-neigh: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	out, errOut, code = runBin(t, bin, env, "show-stats", "0.01", "2")
	want = "      RX-PPS       TX-PPS  RX-MBIT/S  TX-MBIT/S    DROPS/S\n" +
		"        2000         2000      20.00      20.00         10\n" +
		"        2000         2000      20.00      20.00         10\n"
	if code != 0 || errOut != "" || out != want {
		t.Errorf("show-stats 0.01 2: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	out, errOut, code = runBin(t, bin, env, "-o", "json", "show-neigh", "outside")
	var neighs []control.NeighInfo
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &neighs) != nil || !reflect.DeepEqual(neighs, fakeulbd.Neighs[:1]) {
		t.Errorf("-o json show-neigh outside: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}

	out, errOut, code = runBin(t, bin, env, "show-stats", "-r", "web", "0.01", "2")
	want = "     CONNS      NEW/S       IN-PPS      OUT-PPS  IN-MBIT/S OUT-MBIT/S    DROPS/S\n" +
		"         2         11          500          400       2.00       8.00          1\n" +
		"         2         10          500          400       2.00       8.00          1\n"
	if code != 0 || errOut != "" || out != want {
		t.Errorf("show-stats -r web 0.01 2: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	out, errOut, code = runBin(t, bin, env, "-o", "json", "show-conn", "-r", "web6")
	var conns control.ConnList
	web6 := []control.ConnInfo{{Rule: "web6", Protocol: "tcp", Client: "[2001:db8:9::7]:50000", VIP: "[2001:db8:1::100]:8042",
		Proxy: "[2001:db8:2::50]:1024", Server: "[2001:db8:2::200]:8042", State: "ESTABLISHED", Age: 100, Idle: 5,
		Packets: 1000, Bytes: 1_000_000}}
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &conns) != nil || conns.Total != 1 ||
		!reflect.DeepEqual(conns.Conns, web6) {
		t.Errorf("-o json show-conn -r web6: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}

	out, errOut, code = runBin(t, bin, env, "drain-server", "-r", "web", "203.0.113.9")
	if code != 1 || out != "" || errOut != "ulbadm: drain-server: no server 203.0.113.9\n" {
		t.Errorf("drain-server of an unknown server: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, errOut, code = runBin(t, bin, env, "show-port", "nope")
	if code != 1 || out != "" || errOut != "ulbadm: show-port: no port \"nope\"\n" {
		t.Errorf("show-port nope: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, errOut, code = runBin(t, bin, env, "show-frobs")
	if code != 2 || out != "" || !strings.HasPrefix(errOut, "ulbadm: unknown verb \"show-frobs\"\nusage: ulbadm ") {
		t.Errorf("unknown verb: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, errOut, code = runBin(t, bin, env, "-o", "xml", "show-port")
	if code != 2 || out != "" || !strings.Contains(errOut, "usage: ulbadm ") {
		t.Errorf("bad option: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestBinaryUnreachable(t *testing.T) {
	bin := buildUlbadm(t)
	missing := filepath.Join(t.TempDir(), "ulbd.sock")
	out, errOut, code := runBin(t, bin, []string{"ULB_SOCKET=" + missing}, "show-port")
	if want := "ulbadm: cannot reach ulbd at " + missing + ": is it running?\n"; code != 1 || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
}

func TestBinaryRouterAndWatch(t *testing.T) {
	bin := buildUlbadm(t)
	f := fakeulbd.Run(t)
	env := []string{"ULB_SOCKET=" + f.Path}

	out, errOut, code := runBin(t, bin, env, "show-router", "vip")
	want := "NAME  VRID  PORT     AF    PRIO     ADV_INTV  MODE  STATE   VMAC               MASTER\n" +
		"vip   1     outside  IPv4  150/200  1s        -pa   MASTER  00:00:5e:00:01:01  198.51.100.10\n"
	if code != 0 || errOut != "" || out != want {
		t.Errorf("show-router vip: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}

	// watch -n 2 prints two events and exits; it runs until then, so start it, wait for
	// its subscription, and publish.
	cmd := exec.Command(bin, "watch", "-k", "vrrp", "-n", "2")
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	f.WaitWatchers(t, 1)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Events.Publish(control.Event{Time: at, Kind: "server", Name: "web"})
	f.Events.Publish(control.Event{Time: at, Kind: control.EventVRRP, Name: "vip", From: control.RouterBackup, To: control.RouterMaster})
	f.Events.Publish(control.Event{Time: at, Kind: control.EventVRRP, Name: "gw", From: control.RouterBackup, To: control.RouterMaster})
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		want := "2025-01-02T03:04:05.000Z vrrp vip: backup -> master\n2025-01-02T03:04:05.000Z vrrp gw: backup -> master\n"
		if err != nil || e.Len() != 0 || o.String() != want {
			t.Errorf("watch -n 2: %v, stderr %q, stdout:\n%s\nwant:\n%s", err, e.String(), o.String(), want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch -n 2 did not exit after two events")
	}

	// SIGINT ends a watch with exit 0.
	cmd = exec.Command(bin, "watch")
	cmd.Env = append(os.Environ(), env...)
	o.Reset()
	cmd.Stdout = &o
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	f.WaitWatchers(t, 1)
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil || o.Len() != 0 {
		t.Errorf("watch interrupted: %v, stdout %q", err, o.String())
	}
	f.WaitWatchers(t, 0)
}
