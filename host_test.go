//go:build linux

package netrunner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Until remote execution lands, a Cmd with a Host is refused before
// anything runs, with an error that says so, on every way in.
func TestHostRefusedBeforeAnythingRuns(t *testing.T) {
	defer leakCheck(t)()
	marker := filepath.Join(t.TempDir(), "ran")
	runs := map[string]func(c *Cmd) error{
		"Start":  func(c *Cmd) error { _, err := c.Start(testCtx(t)); return err },
		"Run":    func(c *Cmd) error { _, err := c.Run(testCtx(t)); return err },
		"Output": func(c *Cmd) error { _, err := c.Output(testCtx(t)); return err },
		"Lines": func(c *Cmd) error {
			for _, err := range c.Lines(testCtx(t)) {
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	for name, run := range runs {
		c := sh("touch " + marker)
		c.Host = SSH(nil)
		err := run(c)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "netrunner: sh -c 'touch ") {
			t.Errorf("%s: %q does not name the command", name, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
}
