package netrunner

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Until Windows support lands, every way of starting a command refuses with
// an error that names it and matches both ErrUnsupported sentinels, while
// bad input is still reported as such.
func TestWindowsStartUnsupported(t *testing.T) {
	ctx := context.Background()
	last := func(seq func(func([]byte, error) bool)) (err error) {
		for _, e := range seq {
			err = e
		}
		return err
	}
	for _, tc := range []struct {
		how string
		run func(*Cmd) error
	}{
		{"Start", func(c *Cmd) error {
			p, err := c.Start(ctx)
			if p != nil {
				t.Errorf("Start returned a Process")
			}
			return err
		}},
		{"Run", func(c *Cmd) error {
			res, err := c.Run(ctx)
			if res != nil {
				t.Errorf("Run returned a Result")
			}
			return err
		}},
		{"Output", func(c *Cmd) error { _, err := c.Output(ctx); return err }},
		{"Chunks", func(c *Cmd) error { return last(c.Chunks(ctx)) }},
		{"Lines", func(c *Cmd) error { return last(c.Lines(ctx)) }},
		{"Pipeline", func(c *Cmd) error { _, err := Pipeline(c, Command("sort")).Start(ctx); return err }},
		{"Daemon", func(c *Cmd) error { return (&Daemon{Cmd: c, Restart: RestartAlways}).Run(ctx) }},
	} {
		err := tc.run(Command("where.exe", "cmd"))
		switch {
		case !errors.Is(err, ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported):
			t.Errorf("%s: err = %v; want one wrapping ErrUnsupported", tc.how, err)
		case !strings.HasPrefix(err.Error(), "netrunner: ") || !strings.Contains(err.Error(), "where.exe cmd: "):
			t.Errorf("%s: err %q does not name the command after the package prefix", tc.how, err)
		}
		if err := tc.run(Command("")); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s of an empty name: err = %v; want ErrInvalidCommand", tc.how, err)
		}
	}
}
