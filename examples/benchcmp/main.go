// Command benchcmp runs netrunner's side-by-side benchmarks (bench_test.go)
// and prints one table: each case's netrunner figure, its baseline (os/exec,
// or the tuned reference), the ratio, and whether the target of issue 7 is met.
// Figures are medians over -count runs; raw `go test` output goes to stderr.
//
//	go run ./examples/benchcmp [-count 5] [-benchtime 2s]
package main

import (
	"bufio"
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
	defaultPattern = "^Benchmark(Stream|WriteTo|Spawn|RoundTrip|AllocsPerChunk|Concurrent1000|Heap1GiB)$"
	chunkSize      = 64 << 10 // the default ChunkSize
)

// A row compares two benchmarks on one unit.
type row struct {
	label     string
	nr, base  string  // sub-benchmark names, without the -GOMAXPROCS suffix
	unit      string  // "MB/s", "ns/op", "allocs/chunk", "heap-growth-B"
	target    float64 // ratio to reach (speed), or most value allowed (allocs, heap)
	hasTarget bool
}

var rows = []row{
	{"stream small-writes: Next vs os/exec", "Stream/small-writes/netrunner-next", "Stream/small-writes/os-exec-copy", "MB/s", 0.95, true},
	{"stream small-writes: Next vs tuned", "Stream/small-writes/netrunner-next", "Stream/small-writes/tuned-reference", "MB/s", 0, false},
	{"stream large-writes: Next vs os/exec", "Stream/large-writes/netrunner-next", "Stream/large-writes/os-exec-copy", "MB/s", 2.5, true},
	{"stream large-writes: Next vs tuned", "Stream/large-writes/netrunner-next", "Stream/large-writes/tuned-reference", "MB/s", 0.9, true},
	{"WriteTo pipe vs os/exec io.Copy", "WriteTo/pipe/netrunner-writeto", "WriteTo/pipe/os-exec-copy", "MB/s", 1.2, true},
	{"WriteTo /dev/null vs os/exec io.Copy", "WriteTo/devnull/netrunner-writeto", "WriteTo/devnull/os-exec-copy", "MB/s", 0, false},
	{"spawn: Start+Wait true vs exec Run", "Spawn/netrunner-start-wait", "Spawn/os-exec-run", "ns/op", 0.9, true},
	{"spawn: Cmd.Run true vs exec Run", "Spawn/netrunner-run", "Spawn/os-exec-run", "ns/op", 0, false},
	{"round trip 1 byte via cat", "RoundTrip/netrunner", "RoundTrip/os-exec", "ns/op", 0.9, true},
	{"1000 procs x 1 MiB, errgroup", "Concurrent1000/netrunner-next", "Concurrent1000/os-exec-copy", "MB/s", 0, false},
	{"allocs/chunk Next (cancelable ctx)", "AllocsPerChunk/netrunner-next", "AllocsPerChunk/os-exec-read", "allocs/chunk", 0, true},
	{"allocs/chunk Next (Background ctx)", "AllocsPerChunk/netrunner-next-background-ctx", "AllocsPerChunk/os-exec-read", "allocs/chunk", 0, true},
	{"allocs/chunk Read", "AllocsPerChunk/netrunner-read", "AllocsPerChunk/os-exec-read", "allocs/chunk", 0, true},
	{"allocs/chunk WriteTo (non-file writer)", "AllocsPerChunk/netrunner-writeto", "AllocsPerChunk/os-exec-read", "allocs/chunk", 0, true},
	{"heap growth, 1 GiB via Next (demand 1)", "Heap1GiB/netrunner-next", "Heap1GiB/os-exec-copy", "heap-growth-B", 1*chunkSize + 1<<20, true},
	{"heap growth, 1 GiB via Request(16)/C", "Heap1GiB/netrunner-request16", "Heap1GiB/os-exec-copy", "heap-growth-B", 16*chunkSize + 1<<20, true},
}

func main() {
	count := flag.Int("count", 3, "runs of each benchmark; the table shows medians")
	benchtime := flag.String("benchtime", "", "passed to go test -benchtime (default: go test's)")
	pattern := flag.String("bench", defaultPattern, "benchmarks to run")
	flag.Parse()
	log.SetFlags(0)

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
	if err != nil {
		return "", err
	}
	for {
		if isRoot(dir) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/netrunner-go/netrunner above the current directory")
		}
		dir = parent
	}
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

func printTable(results map[string]map[string][]float64) {
	fmt.Printf("\n%-40s %14s %14s %8s %12s  %s\n", "case", "netrunner", "baseline", "ratio", "target", "")
	for _, r := range rows {
		nr, okN := median(results[r.nr][r.unit])
		base, okB := median(results[r.base][r.unit])
		if !okN {
			fmt.Printf("%-40s %14s\n", r.label, "not run")
			continue
		}
		baseText := "-"
		if okB {
			baseText = format(base, r.unit)
		}
		ratioText, targetText, verdict := "-", "-", ""
		switch r.unit {
		case "MB/s", "ns/op":
			if okB && nr > 0 && base > 0 {
				ratio := nr / base // higher is better for MB/s
				if r.unit == "ns/op" {
					ratio = base / nr // speed, not time
				}
				ratioText = fmt.Sprintf("%.2fx", ratio)
				if r.hasTarget {
					targetText = fmt.Sprintf(">= %.2fx", r.target)
					verdict = metOrMissed(ratio >= r.target)
				}
			}
		default: // an absolute ceiling
			if r.hasTarget {
				targetText = "<= " + format(r.target, r.unit)
				// A benchmark's own set-up, spread over its ops, rounds to 0.
				limit := r.target
				if r.unit == "allocs/chunk" {
					limit = 0.05
				}
				verdict = metOrMissed(nr <= limit)
			}
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
	switch unit {
	case "MB/s":
		return fmt.Sprintf("%.0f MB/s", v)
	case "ns/op":
		if v >= 1e6 {
			return fmt.Sprintf("%.2f ms", v/1e6)
		}
		return fmt.Sprintf("%.1f µs", v/1e3)
	case "heap-growth-B":
		return fmt.Sprintf("%.2f MiB", v/(1<<20))
	case "allocs/chunk":
		return fmt.Sprintf("%.2f", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
