package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"ulb/cmd/ulbadm/internal/wizard"
)

// wizardVerb runs the setup wizard on standard input. It never dials ulbd: it writes a
// file for a ulbd that may not be installed yet.
func wizardVerb(ctx context.Context, c *cmd, args []string) error {
	var file string
	var force bool
	if _, err := parse("wizard", args, 0, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "o", wizard.DefaultFile, "")
		fs.BoolVar(&force, "f", false, "")
	}); err != nil {
		return err
	}
	if c.json {
		return usagef("wizard: -o json does not apply (the wizard writes TOML to -o FILE)")
	}
	if file == "" {
		return usagef("wizard: -o needs a FILE")
	}
	opt := wizard.Options{File: file, Force: force}
	if !isTerminal(c.stdin) {
		// From a pipe or a file: echo the answers, and give up on a bad one after a
		// few tries instead of reading the rest of a script as answers to it.
		opt.Echo, opt.Attempts = true, wizard.MaxAttempts
	}
	if _, err := wizard.Run(ctx, c.stdin, c.stdout, opt); err != nil {
		return fmt.Errorf("wizard: %w", err)
	}
	return nil
}

// isTerminal tells whether r is a terminal (a character device).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
