//go:build !linux

package netrunner

// cgroup is Linux only; validatePlatform refuses Cmd.Cgroup elsewhere.
type cgroup struct{}

func (c *Cmd) openCgroup() (*cgroup, error) { return nil, nil }

func (cg *cgroup) end() {}
