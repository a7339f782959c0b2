package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvBin names the environment variable that gives the directory of ulbd and ulbbench.
const EnvBin = "ULB_BIN"

// ErrNotFound is wrapped when a program cannot be found or built.
var ErrNotFound = errors.New("program not found")

// lookBin resolves a program name the way process runs and checks do: a name with a slash
// is a path relative to the bench file; otherwise the -bin directory, $ULB_BIN, this very
// program (for ulbbench), PATH, and finally, for a command of this repository (cmd/NAME),
// a `go build` into the bench's state directory.
func (b *Bench) lookBin(name string) (string, error) {
	if strings.Contains(name, "/") {
		if filepath.IsAbs(name) {
			return name, nil
		}
		return filepath.Join(b.spec.Dir, name), nil
	}
	b.binMu.Lock()
	defer b.binMu.Unlock()
	if p, ok := b.bins[name]; ok {
		return p, nil
	}
	p, err := b.findBin(name)
	if err != nil {
		return "", err
	}
	b.bins[name] = p
	return p, nil
}

func (b *Bench) findBin(name string) (string, error) {
	var tried []string
	for _, dir := range []string{b.opts.BinDir, os.Getenv(EnvBin)} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if name == "ulbbench" {
		if self, err := os.Executable(); err == nil && filepath.Base(self) == "ulbbench" {
			return self, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	tried = append(tried, "PATH")
	for _, start := range []string{b.spec.Dir, "."} {
		root := repoRoot(start)
		if root == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", name)); err != nil {
			break
		}
		return b.build(root, name)
	}
	return "", fmt.Errorf("bench: %s: %w (tried %s, and no ulb checkout to build it from)", name, ErrNotFound, strings.Join(tried, ", "))
}

// build runs `go build ./cmd/NAME` in the repository into the state directory.
func (b *Bench) build(root, name string) (string, error) {
	dir := filepath.Join(b.stateDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	out := filepath.Join(dir, name)
	b.logf("building %s from %s", name, root)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: go build ./cmd/%s: %v\n%s", name, err, msg)
	}
	return out, nil
}

// repoRoot walks up from dir to the directory whose go.mod declares module ulb, or "".
func repoRoot(dir string) string {
	d, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		if f, err := os.Open(filepath.Join(d, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == "module ulb" {
					f.Close()
					return d
				}
			}
			f.Close()
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
