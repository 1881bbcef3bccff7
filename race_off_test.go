//go:build linux && !race

package netrunner

// raceEnabled reports whether the tests run under the race detector, which
// makes every run several times slower; long loops scale down with it.
const raceEnabled = false
