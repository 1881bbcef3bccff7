// Command benchcmp runs netrunner's side-by-side benchmarks (bench_test.go)
// and prints one table: each case's netrunner figure, its baseline (os/exec,
// or the tuned reference), the ratio, and whether the target of issue 7 is met.
// Figures are medians over -count runs, ratios the median of the ratios of
// each round; raw `go test` output goes to stderr.
//
//	go run ./examples/benchcmp [-count 5] [-benchtime 2s] [-bench regexp]
//	go run ./examples/benchcmp -in saved-output.txt
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

const (
	defaultPattern = "^Benchmark(Stream|WriteTo|Spawn|RoundTrip|AllocsPerChunk|Concurrent|Heap1GiB|Idle)$"
	chunkSize      = 64 << 10 // the default ChunkSize
)

// A row compares two benchmarks on one unit.
type row struct {
	label     string
	nr, base  string  // sub-benchmark names, without the -GOMAXPROCS suffix
	unit      string  // "MB/s", "ns/op", "allocs/chunk", "heap-growth-B"; or a time
	baseUnit  string  // the baseline's unit when nr and base are one benchmark
	target    float64 // ratio to reach (speed), or most value allowed (allocs, heap)
	hasTarget bool
}

var rows = []row{
	{"stream small-writes: Next vs os/exec", "Stream/small-writes/netrunner-next", "Stream/small-writes/os-exec-copy", "MB/s", "", 0.95, true},
	{"stream small-writes: Next vs tuned", "Stream/small-writes/netrunner-next", "Stream/small-writes/tuned-reference", "MB/s", "", 0, false},
	{"stream large-writes: Next vs os/exec", "Stream/large-writes/netrunner-next", "Stream/large-writes/os-exec-copy", "MB/s", "", 2.5, true},
	{"stream large-writes: Next vs tuned", "Stream/large-writes/netrunner-next", "Stream/large-writes/tuned-reference", "MB/s", "", 0.9, true},
	{"WriteTo pipe vs os/exec io.Copy", "WriteTo/pipe/netrunner-writeto", "WriteTo/pipe/os-exec-copy", "MB/s", "", 1.2, true},
	{"WriteTo /dev/null vs os/exec io.Copy", "WriteTo/devnull/netrunner-writeto", "WriteTo/devnull/os-exec-copy", "MB/s", "", 0, false},
	{"spawn: Start+Wait true vs exec Run", "Spawn/netrunner-start-wait", "Spawn/os-exec-run", "ns/op", "", 0.9, true},
	{"spawn: interleaved, same ops", "Spawn/interleaved", "Spawn/interleaved", "netrunner-ns/spawn", "os-exec-ns/spawn", 0.9, true},
	{"spawn: Cmd.Run true vs exec Run", "Spawn/netrunner-run", "Spawn/os-exec-run", "ns/op", "", 0, false},
	{"spawn: Cmd.Run, interleaved", "Spawn/interleaved-run", "Spawn/interleaved-run", "netrunner-ns/run", "os-exec-ns/run", 1.0, true},
	{"spawn: Start alone, interleaved", "Spawn/interleaved-start", "Spawn/interleaved-start", "netrunner-ns/start", "os-exec-ns/start", 1 / 1.1, true},
	{"spawn: Run x1 at once", "Spawn/parallel/1", "Spawn/parallel/1", "netrunner-ns/op", "os-exec-ns/op", 0, false},
	{"spawn: Run x8 at once", "Spawn/parallel/8", "Spawn/parallel/8", "netrunner-ns/op", "os-exec-ns/op", 0, false},
	{"spawn: Run x64 at once", "Spawn/parallel/64", "Spawn/parallel/64", "netrunner-ns/op", "os-exec-ns/op", 0, false},
	{"round trip 1 byte via cat", "RoundTrip/netrunner", "RoundTrip/os-exec", "ns/op", "", 0.9, true},
	{"round trip: interleaved, same ops", "RoundTrip/interleaved", "RoundTrip/interleaved", "netrunner-ns/trip", "os-exec-ns/trip", 0.9, true},
	{"1000 procs x 1 MiB, errgroup", "Concurrent/1000x1MiB/netrunner-next", "Concurrent/1000x1MiB/os-exec-copy", "MB/s", "", 0, false},
	{"allocs/chunk Next (cancelable ctx)", "AllocsPerChunk/netrunner-next", "AllocsPerChunk/os-exec-read", "allocs/chunk", "", 0, true},
	{"allocs/chunk Next (Background ctx)", "AllocsPerChunk/netrunner-next-background-ctx", "AllocsPerChunk/os-exec-read", "allocs/chunk", "", 0, true},
	{"allocs/chunk Read", "AllocsPerChunk/netrunner-read", "AllocsPerChunk/os-exec-read", "allocs/chunk", "", 0, true},
	{"allocs/chunk WriteTo (non-file writer)", "AllocsPerChunk/netrunner-writeto", "AllocsPerChunk/os-exec-read", "allocs/chunk", "", 0, true},
	{"allocs/chunk WriteTo (/dev/null)", "AllocsPerChunk/netrunner-writeto-devnull", "AllocsPerChunk/os-exec-read", "allocs/chunk", "", 0, true},
	{"heap growth, 1 GiB via Next (demand 1)", "Heap1GiB/netrunner-next", "Heap1GiB/os-exec-copy", "heap-growth-B", "", 1*chunkSize + 1<<20, true},
	{"heap growth, 1 GiB via Next, Background", "Heap1GiB/netrunner-next-background-ctx", "Heap1GiB/os-exec-copy", "heap-growth-B", "", 1*chunkSize + 1<<20, true},
	{"heap growth, 1 GiB via Request(16)/C", "Heap1GiB/netrunner-request16", "Heap1GiB/os-exec-copy", "heap-growth-B", "", 16*chunkSize + 1<<20, true},
	{"idle: heap B/proc, no consumer", "Idle/netrunner", "Idle/os-exec", "heap-B/proc", "", 0, false},
	{"idle: heap B/proc, parked in Next", "Idle/netrunner-parked-next", "Idle/os-exec-parked-read", "heap-B/proc", "", 16 << 10, true},
	{"idle: heap+stack B/proc, parked", "Idle/netrunner-parked-next", "Idle/os-exec-parked-read", "mem-B/proc", "", 0, false},
	{"idle: goroutines/proc, no consumer", "Idle/netrunner", "Idle/os-exec", "goroutines/proc", "", 0, false},
	{"idle: fds/proc, no consumer", "Idle/netrunner", "Idle/os-exec", "fds/proc", "", 0, false},
}

func main() {
	count := flag.Int("count", 3, "runs of each benchmark; the table shows medians")
	benchtime := flag.String("benchtime", "", "passed to go test -benchtime (default: go test's)")
	pattern := flag.String("bench", defaultPattern, "benchmarks to run")
	in := flag.String("in", "", "read saved `go test -bench` output from this file instead of running it")
	flag.Parse()
	log.SetFlags(0)

	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			log.Fatal(err)
		}
		printTable(parse(f))
		return
	}
	root, err := moduleRoot()
	if err != nil {
		log.Fatal(err)
	}
	args := []string{"test", "-run", "^$", "-bench", *pattern, "-benchmem",
		"-count", strconv.Itoa(*count), "-timeout", "2h"}
	if *benchtime != "" {
		args = append(args, "-benchtime", *benchtime)
	}
	args = append(args, ".")
	fmt.Fprintf(os.Stderr, "in %s: go %s\n", root, strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Stderr = root, os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	results := parse(io.TeeReader(out, os.Stderr))
	if err := cmd.Wait(); err != nil {
		log.Fatalf("go test: %v", err)
	}
	printTable(results)
}

// moduleRoot finds the directory of netrunner's go.mod: two levels above this
// source file when it is at hand (go run), else the nearest one above cwd.
func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "..", "..")
		if isRoot(dir) {
			return filepath.Clean(dir), nil
		}
	}
	dir, err := os.Getwd()
	for ; err == nil; dir = filepath.Dir(dir) {
		if isRoot(dir) {
			return dir, nil
		}
		if dir == filepath.Dir(dir) {
			err = fmt.Errorf("no go.mod of github.com/netrunner-go/netrunner above the current directory")
		}
	}
	return "", err
}

func isRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && strings.Contains(string(b), "module github.com/netrunner-go/netrunner\n")
}

// parse collects every figure of every benchmark line:
// results[name][unit] holds one value per run.
func parse(r io.Reader) map[string]map[string][]float64 {
	results := map[string]map[string][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the -GOMAXPROCS suffix
			}
		}
		if results[name] == nil {
			results[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				results[name][f[i+1]] = append(results[name][f[i+1]], v)
			}
		}
	}
	return results
}

func median(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// pairedRatio is the median of nr[i]/base[i]. With -count, go test runs a
// benchmark's sub-benchmarks one after the other in every round, so pairing
// by round compares runs that saw the same load on a busy machine.
func pairedRatio(nr, base []float64) float64 {
	if len(nr) != len(base) {
		m, _ := median(nr)
		b, _ := median(base)
		return m / b
	}
	ratios := make([]float64, len(nr))
	for i := range nr {
		ratios[i] = nr[i] / base[i]
	}
	m, _ := median(ratios)
	return m
}

func printTable(results map[string]map[string][]float64) {
	fmt.Println("\nfigures: medians over the runs; ratio: median of each round's ratio (speed: >1 is netrunner faster)")
	fmt.Printf("%-40s %14s %14s %8s %12s\n", "case", "netrunner", "baseline", "ratio", "target")
	for _, r := range rows {
		baseUnit := cmp.Or(r.baseUnit, r.unit)
		nr, okN := median(results[r.nr][r.unit])
		base, okB := median(results[r.base][baseUnit])
		if !okN {
			fmt.Printf("%-40s %14s\n", r.label, "not run")
			continue
		}
		baseText, ratioText, targetText, verdict := "-", "-", "-", ""
		if okB {
			baseText = format(base, r.unit)
		}
		isTime := strings.Contains(r.unit, "ns/")
		switch {
		case (r.unit == "MB/s" || isTime) && okB && nr > 0 && base > 0:
			ratio := pairedRatio(results[r.nr][r.unit], results[r.base][baseUnit])
			if isTime {
				ratio = 1 / ratio // speed, not time
			}
			ratioText = fmt.Sprintf("%.2fx", ratio)
			if r.hasTarget {
				targetText, verdict = fmt.Sprintf(">= %.2fx", r.target), metOrMissed(ratio >= r.target)
			}
		case r.unit == "allocs/chunk":
			// The benchmark's own set-up, spread over its ops, is near 0.
			targetText, verdict = "0", metOrMissed(nr < 0.05)
		case r.hasTarget: // an absolute ceiling
			targetText, verdict = "<= "+format(r.target, r.unit), metOrMissed(nr <= r.target)
		}
		fmt.Printf("%-40s %14s %14s %8s %12s  %s\n", r.label, format(nr, r.unit), baseText, ratioText, targetText, verdict)
	}
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func format(v float64, unit string) string {
	switch {
	case unit == "MB/s":
		return fmt.Sprintf("%.0f MB/s", v)
	case strings.Contains(unit, "ns/") && v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case strings.Contains(unit, "ns/"):
		return fmt.Sprintf("%.1f µs", v/1e3)
	case unit == "heap-growth-B":
		return fmt.Sprintf("%.2f MiB", v/(1<<20))
	}
	return fmt.Sprintf("%.2f", v)
}
