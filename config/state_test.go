package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestState: SaveState writes a state that LoadWithState starts from while it is newer
// than the file; an older one, or one that does not load, is set aside as .old and the
// file loaded; nothing but the state is left in the directory.
func TestState(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ulbd.toml")
	base := "control_socket = \"/run/ulb/t.sock\"\n[[port]]\nname = \"a\"\ndevice = \"p0\"\naddress = [\"192.0.2.1/24\"]\n"
	if err := os.WriteFile(file, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	c, note, err := LoadWithState(file)
	if err != nil || note != "" || c.Hostname != "" {
		t.Fatalf("no state: %v, %q", err, note)
	}
	changed, err := Parse("x.toml", []byte("hostname = \"lb9\"\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(file, past, past)
	if err := SaveState(file, changed); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("after SaveState the directory holds %d entries, want the file and its state", len(entries))
	}
	c, note, err = LoadWithState(file)
	if err != nil || c.Hostname != "lb9" || !strings.Contains(note, "started from the run-time state") {
		t.Fatalf("newer state: %+v, %q, %v", c, note, err)
	}
	// The file edited after the state: the file wins, the state is set aside.
	future := time.Now().Add(time.Hour)
	os.Chtimes(file, future, future)
	c, note, err = LoadWithState(file)
	if err != nil || c.Hostname != "" || !strings.Contains(note, "newer than its run-time state") {
		t.Fatalf("older state: %+v, %q, %v", c, note, err)
	}
	if _, err := os.Stat(StatePath(file) + ".old"); err != nil {
		t.Errorf("the older state was not set aside: %v", err)
	}
	// A state that does not load: set aside, the file loaded.
	if err := os.WriteFile(StatePath(file), []byte("[[port]]\nname = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(file, past, past)
	c, note, err = LoadWithState(file)
	if err != nil || c.Hostname != "" || !strings.Contains(note, "does not load") {
		t.Fatalf("broken state: %+v, %q, %v", c, note, err)
	}
	if err := RemoveState(file); err != nil {
		t.Errorf("RemoveState without a state: %v", err)
	}
	if FilePath(StatePath(file)) != file {
		t.Errorf("FilePath(StatePath(%s)) = %s", file, FilePath(StatePath(file)))
	}
}
