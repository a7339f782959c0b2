package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The runtime state file: what ulbadm changed in a running ulbd (import-config, and the
// run-time verbs), kept beside the configuration file as FILE.state so that it survives a
// restart, while the file itself, and its comments, stay as the user wrote them. ulbd
// starts from the state file when it is newer than the file; a reload of the file
// (SIGHUP, ulbadm reload) makes the file win and removes the state.

// StateSuffix ends the name of a configuration file's state file.
const StateSuffix = ".state"

// StatePath is the state file of the configuration file at path.
func StatePath(path string) string { return path + StateSuffix }

// FilePath is the configuration file whose state file, or itself, is at path.
func FilePath(path string) string { return strings.TrimSuffix(path, StateSuffix) }

// SaveState writes c, rendered by Marshal, as the state file of the configuration file
// at path: into a temporary file of the same directory, synced, renamed over the old
// state and the directory synced, so that a crash at any point leaves the old state or
// the new one, never a part.
func SaveState(path string, c *Config) error {
	data, err := Marshal(c)
	if err != nil {
		return err
	}
	return writeAtomic(StatePath(path), data)
}

// writeAtomic replaces the file at path with data (temporary file, fsync, rename, fsync
// of the directory).
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("config: state: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("config: state %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// RemoveState removes the state file of the configuration file at path, if any.
func RemoveState(path string) error {
	if err := os.Remove(StatePath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// LoadWithState loads the configuration file at path, or its state file when that is
// newer than the file, and says which in note (empty when there is no state). A state
// file older than the file (the file was edited since) is set aside as FILE.state.old;
// one that fails to load is set aside too, and the file is loaded. Temporary files left
// by an interrupted SaveState are removed.
func LoadWithState(path string) (c *Config, note string, err error) {
	state := StatePath(path)
	// A temporary file of a write a crash interrupted is of no use.
	if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(state), "."+filepath.Base(state)+".*")); len(tmps) > 0 {
		for _, f := range tmps {
			os.Remove(f)
		}
	}
	st, serr := os.Stat(state)
	if serr != nil {
		c, err = Load(path)
		return c, "", err
	}
	fi, ferr := os.Stat(path)
	if ferr == nil && fi.ModTime().After(st.ModTime()) {
		os.Rename(state, state+".old")
		c, err = Load(path)
		return c, fmt.Sprintf("%s is newer than its run-time state: the state is set aside as %s.old", path, state), err
	}
	if c, err = Load(state); err != nil {
		os.Rename(state, state+".old")
		c, lerr := Load(path)
		return c, fmt.Sprintf("the run-time state %s does not load (%v): set aside as %s.old, %s loaded", state, err, state, path), lerr
	}
	return c, fmt.Sprintf("started from the run-time state %s (the changes made with ulbadm since %s was last loaded)", state, path), nil
}
