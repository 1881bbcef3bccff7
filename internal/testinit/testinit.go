// Package testinit plays, for tests only, a package whose init misbehaves in
// a re-executed watchdog, as real ones do: one that validates its arguments
// or environment and exits, or one that takes its time. Tests import it so
// that it is initialised before internal/watchdog, and steer it with
// NETRUNNER_TEST_INIT: "exit:N" exits with status N, "sleep:D" sleeps for
// the duration D; either only in a process that is to become the watchdog
// (NETRUNNER_WATCHDOG=1).
package testinit

import (
	"os"
	"strconv"
	"strings"
	"time"
)

func init() {
	if os.Getenv("NETRUNNER_WATCHDOG") != "1" {
		return
	}
	what, arg, _ := strings.Cut(os.Getenv("NETRUNNER_TEST_INIT"), ":")
	switch what {
	case "exit":
		code, _ := strconv.Atoi(arg)
		os.Exit(code)
	case "sleep":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
	}
}
