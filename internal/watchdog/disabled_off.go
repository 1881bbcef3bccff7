//go:build !netrunner_nowatchdog

package watchdog

// builtDisabled: the netrunner_nowatchdog build tag turns the watchdog off.
const builtDisabled = false
