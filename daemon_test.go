//go:build linux

package netrunner

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// daemonRec is one log record as the test's handler saw it.
type daemonRec struct {
	time   time.Time // when the handler got it
	level  slog.Level
	msg    string
	attrs  map[string]slog.Value
	pidNow int // Daemon.Pid() when the record was handled
}

func (r daemonRec) str(key string) string { return r.attrs[key].String() }

func (r daemonRec) int(key string) int {
	v, ok := r.attrs[key]
	if !ok {
		return -1
	}
	switch v.Kind() {
	case slog.KindInt64:
		return int(v.Int64())
	default:
		n, _ := strconv.Atoi(v.String())
		return n
	}
}

// daemonLog collects the records of a Daemon's Logger.
type daemonLog struct {
	d       *Daemon
	mu      sync.Mutex
	recs    []daemonRec
	changed chan struct{} // signalled after each record
}

func newDaemonLog(d *Daemon) *daemonLog {
	l := &daemonLog{d: d, changed: make(chan struct{}, 1)}
	d.Logger = slog.New(&daemonHandler{log: l})
	return l
}

// records returns a copy of the records so far that satisfy keep.
func (l *daemonLog) records(keep func(daemonRec) bool) []daemonRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []daemonRec
	for _, r := range l.recs {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// waitRecords waits until at least n records satisfy keep.
func (l *daemonLog) waitRecords(t *testing.T, n int, what string, keep func(daemonRec) bool) []daemonRec {
	t.Helper()
	var recs []daemonRec
	waitFor(t, 30*time.Second, what, func() bool {
		recs = l.records(keep)
		return len(recs) >= n
	})
	return recs
}

func msgIs(msg string) func(daemonRec) bool {
	return func(r daemonRec) bool { return r.msg == msg }
}

func fromStream(stream string) func(daemonRec) bool {
	return func(r daemonRec) bool { return r.str("stream") == stream }
}

type daemonHandler struct {
	log   *daemonLog
	attrs []slog.Attr
}

func (h *daemonHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *daemonHandler) Handle(_ context.Context, r slog.Record) error {
	rec := daemonRec{time: time.Now(), level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}, pidNow: h.log.d.Pid()}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Resolve()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.log.mu.Lock()
	h.log.recs = append(h.log.recs, rec)
	h.log.mu.Unlock()
	select {
	case h.log.changed <- struct{}{}:
	default:
	}
	return nil
}

func (h *daemonHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &daemonHandler{log: h.log, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *daemonHandler) WithGroup(string) slog.Handler { return h }

// daemonRun runs d in a goroutine; the returned func waits for Run's result.
func daemonRun(t *testing.T, ctx context.Context, d *Daemon) func(what string) error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- d.Run(ctx) }()
	var once sync.Once
	var err error
	t.Cleanup(func() {
		// A test that failed early must not leave Run behind (goleak).
		once.Do(func() {
			select {
			case err = <-res:
			case <-time.After(40 * time.Second):
				t.Errorf("Daemon.Run still running at the end of the test")
			}
		})
	})
	return func(what string) error {
		t.Helper()
		select {
		case err = <-res:
			once.Do(func() {})
			return err
		case <-time.After(30 * time.Second):
			t.Fatalf("Daemon.Run did not return within 30s %s", what)
			return nil
		}
	}
}

// counterScript counts its runs in file and is then script.
func counterScript(file, script string) *Cmd {
	return Command("sh", "-c", `n=$(cat "$0" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$0"; `+script, file)
}

func readCount(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func TestDaemonRestartNever(t *testing.T) {
	check := leakCheck(t)
	count := filepath.Join(t.TempDir(), "count")
	d := &Daemon{Cmd: counterScript(count, "echo bye >&2; exit 3"), Restart: RestartNever, Backoff: time.Millisecond}
	err := daemonRun(t, testCtx(t), d)("for a run with RestartNever")
	ee := exitErr(t, err)
	if ee.Code != 3 {
		t.Errorf("Run: %v, want the run's exit status 3", err)
	}
	if !strings.Contains(string(ee.Stderr), "bye") {
		t.Errorf("ExitError.Stderr %q, want the stderr tail", ee.Stderr)
	}
	if n := readCount(t, count); n != 1 {
		t.Errorf("RestartNever ran the command %d times", n)
	}
	check()
}

// RestartNever with a success returns nil, and the template Cmd can be run
// by the Daemon again (each start runs a fresh copy).
func TestDaemonTemplateReusable(t *testing.T) {
	d := &Daemon{Cmd: Command("true")}
	for i := range 3 {
		if err := d.Run(testCtx(t)); err != nil {
			t.Fatalf("Run %d: %v", i+1, err)
		}
	}
}

func TestDaemonRestartOnFailure(t *testing.T) {
	check := leakCheck(t)
	count := filepath.Join(t.TempDir(), "count")
	d := &Daemon{
		Cmd:     counterScript(count, `[ $n -ge 3 ] || { echo "failing $n" >&2; exit 1; }`),
		Restart: RestartOnFailure,
		Backoff: 10 * time.Millisecond,
	}
	log := newDaemonLog(d)
	err := daemonRun(t, testCtx(t), d)("for a script that succeeds on its third run")
	if err != nil {
		t.Fatalf("Run: %v, want nil after a successful run", err)
	}
	if n := readCount(t, count); n != 3 {
		t.Errorf("the script ran %d times, want 3", n)
	}
	if n := len(log.records(msgIs("started"))); n != 3 {
		t.Errorf("%d starts logged, want 3", n)
	}
	if n := len(log.records(msgIs("restarting"))); n != 2 {
		t.Errorf("%d restarts logged, want 2", n)
	}
	var statuses []string
	for _, r := range log.records(msgIs("exited")) {
		statuses = append(statuses, r.str("status"))
	}
	if strings.Join(statuses, ",") != "exit status 1,exit status 1,exit status 0" {
		t.Errorf("exits logged with statuses %q", statuses)
	}
	if d.Pid() != 0 {
		t.Errorf("Pid() = %d after Run returned", d.Pid())
	}
	check()
}

// RestartAlways restarts after clean exits too, until the context ends;
// then the running process is stopped gracefully (SIGTERM first) and Run
// returns the context's error.
func TestDaemonRestartAlways(t *testing.T) {
	check := leakCheck(t)
	count := filepath.Join(t.TempDir(), "count")
	marker, ready := count+".marker", count+".ready"
	d := &Daemon{
		Cmd: counterScript(count, `[ $n -ge 3 ] || exit 0
trap 'echo term > "$0.marker"; exit 0' TERM
echo $$ > "$0.ready.tmp" && mv "$0.ready.tmp" "$0.ready"
while :; do sleep 0.05; done`),
		Restart: RestartAlways,
		Backoff: 10 * time.Millisecond,
	}
	d.Cmd.KillTimeout = 20 * time.Second // a SIGKILL instead of the trap would take that long
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	wait := daemonRun(t, ctx, d)
	waitFor(t, 30*time.Second, "the third run to be ready", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	b, _ := os.ReadFile(ready)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	killPids(t, pid)
	if got := d.Pid(); got != pid || pid == 0 {
		t.Errorf("Pid() = %d while pid %d runs", got, pid)
	}
	cancel()
	began := time.Now()
	err := wait("after its context was cancelled")
	t.Logf("Run returned %v after cancel", time.Since(began))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "term\n" {
		t.Errorf("the last run was not stopped with SIGTERM first: marker %q, %v", b, err)
	}
	if n := readCount(t, count); n != 3 {
		t.Errorf("ran %d times, want 3", n)
	}
	if !isDead(pid) {
		t.Errorf("the last run (pid %d) is alive after Run returned", pid)
	}
	if d.Pid() != 0 {
		t.Errorf("Pid() = %d after Run returned", d.Pid())
	}
	check()
}

// The delay between restarts doubles from Backoff up to MaxBackoff, with
// jitter, and starts again from Backoff after a run that lasted longer than
// MaxBackoff. Pid() is the running process's, and 0 between runs.
func TestDaemonBackoff(t *testing.T) {
	count := filepath.Join(t.TempDir(), "count")
	const backoff, maxBackoff = 200 * time.Millisecond, 800 * time.Millisecond
	d := &Daemon{
		// The fourth run lasts longer than MaxBackoff.
		Cmd:        counterScript(count, `[ $n -ne 4 ] || sleep 1.2; exit 1`),
		Restart:    RestartOnFailure,
		Backoff:    backoff,
		MaxBackoff: maxBackoff,
	}
	log := newDaemonLog(d)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	wait := daemonRun(t, ctx, d)
	starts := log.waitRecords(t, 6, "six starts", msgIs("started"))
	cancel()
	if err := wait("after cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	restarts := log.records(msgIs("restarting"))
	if len(restarts) < 5 {
		t.Fatalf("%d restarts logged for 6 starts", len(restarts))
	}
	for k, r := range log.records(msgIs("exited"))[:5] {
		if ran := r.attrs["ran"].Duration(); k != 3 && ran > maxBackoff/2 {
			t.Skipf("run %d of a script that exits at once took %v: the machine is too slow for this test", k+1, ran)
		}
	}
	// The delay before restart k: 200, 400, 800 (capped), then 200 again
	// after the long fourth run, then 400; each waited in [delay/2, delay].
	delays := []time.Duration{200, 400, 800, 200, 400}
	for k, want := range delays {
		want *= time.Millisecond
		in := restarts[k].attrs["in"]
		if in.Kind() != slog.KindDuration {
			t.Fatalf("restart %d: attribute in = %v, want a duration", k+1, in)
		}
		if got := in.Duration(); got < want/2 || got > want {
			t.Errorf("restart %d: delay %v, want within [%v, %v]", k+1, got, want/2, want)
		}
		// Start to start takes at least the delay (wall clock, lower bound only).
		if gap := starts[k+1].time.Sub(starts[k].time); gap < in.Duration() {
			t.Errorf("restart %d: started %v after the previous start, less than the delay %v", k+1, gap, in.Duration())
		}
		if restarts[k].pidNow != 0 {
			t.Errorf("Pid() = %d between runs (at restart %d)", restarts[k].pidNow, k+1)
		}
		if s := restarts[k].str("after"); s != "exit status 1" {
			t.Errorf("restart %d logged after %q, want the exit status", k+1, s)
		}
	}
	for k, s := range starts {
		if pid := s.int("pid"); pid <= 0 || s.pidNow != pid {
			t.Errorf("start %d: logged pid %d, Pid() %d then", k+1, pid, s.pidNow)
		}
	}
	if d.Pid() != 0 {
		t.Errorf("Pid() = %d after Run returned", d.Pid())
	}
}

// A context that ends during the backoff ends Run at once.
func TestDaemonCancelDuringBackoff(t *testing.T) {
	d := &Daemon{Cmd: Command("false"), Restart: RestartAlways, Backoff: time.Hour, MaxBackoff: 2 * time.Hour}
	log := newDaemonLog(d)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	wait := daemonRun(t, ctx, d)
	log.waitRecords(t, 1, "the first restart to be scheduled", msgIs("restarting"))
	cancel()
	if err := wait("when cancelled during a backoff of an hour"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
}

// Each line of stdout is an Info record, each line of stderr a Warn
// record, with the stream and the pid as attributes.
func TestDaemonLogger(t *testing.T) {
	check := leakCheck(t)
	d := &Daemon{Cmd: sh(`echo out-line-1; echo err-line-1 >&2; echo out-line-2; printf 'err-line-2' >&2`)}
	log := newDaemonLog(d)
	if err := daemonRun(t, testCtx(t), d)("for a short script"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	started := log.records(msgIs("started"))
	if len(started) != 1 {
		t.Fatalf("%d start records", len(started))
	}
	pid := started[0].int("pid")
	for _, tc := range []struct {
		stream string
		level  slog.Level
		lines  []string
	}{
		{"stdout", slog.LevelInfo, []string{"out-line-1", "out-line-2"}},
		{"stderr", slog.LevelWarn, []string{"err-line-1", "err-line-2"}},
	} {
		recs := log.records(fromStream(tc.stream))
		var msgs []string
		for _, r := range recs {
			msgs = append(msgs, r.msg)
			if r.level != tc.level {
				t.Errorf("%s line %q logged at %v, want %v", tc.stream, r.msg, r.level, tc.level)
			}
			if r.int("pid") != pid {
				t.Errorf("%s line %q has pid %v, want %d", tc.stream, r.msg, r.attrs["pid"], pid)
			}
		}
		if strings.Join(msgs, "|") != strings.Join(tc.lines, "|") {
			t.Errorf("%s records %q, want %q", tc.stream, msgs, tc.lines)
		}
	}
	check()
}

// A line longer than 64 KiB becomes several records of at most 64 KiB.
func TestDaemonLongLineSplit(t *testing.T) {
	d := &Daemon{Cmd: sh(`head -c 200000 /dev/zero | tr '\0' x; echo; echo after`)}
	log := newDaemonLog(d)
	if err := daemonRun(t, testCtx(t), d)("for a long line"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	recs := log.records(fromStream("stdout"))
	total := 0
	var sizes []int
	for _, r := range recs[:max(len(recs)-1, 0)] {
		if strings.Trim(r.msg, "x") != "" {
			t.Fatalf("a piece of the long line holds %q", r.msg[:min(20, len(r.msg))])
		}
		if len(r.msg) > 64<<10 {
			t.Errorf("a record of %d bytes, more than 64 KiB", len(r.msg))
		}
		total += len(r.msg)
		sizes = append(sizes, len(r.msg))
	}
	if total != 200000 || len(sizes) < 4 {
		t.Errorf("the long line came as records of %v bytes (total %d), want pieces of at most 64 KiB adding up to 200000", sizes, total)
	}
	if len(recs) == 0 || recs[len(recs)-1].msg != "after" {
		t.Errorf("the line after the long one is missing")
	}
}

// A line that never ends is logged piece by piece while it is written, not
// kept until its end.
func TestDaemonEndlessLineNotBuffered(t *testing.T) {
	check := leakCheck(t)
	d := &Daemon{Cmd: sh(`head -c 1048576 /dev/zero | tr '\0' y; exec sleep 1000`)}
	log := newDaemonLog(d)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	wait := daemonRun(t, ctx, d)
	// 15 of the 16 pieces: the last one may yet continue, so it waits for
	// more of the line or its end.
	recs := log.waitRecords(t, 15, "15 pieces of a 1 MiB line that has not ended", fromStream("stdout"))
	if d.Pid() == 0 {
		t.Errorf("the process is gone already: the test shows nothing")
	}
	for _, r := range recs {
		if len(r.msg) != 64<<10 {
			t.Errorf("a piece of %d bytes, want 64 KiB", len(r.msg))
		}
	}
	cancel()
	if err := wait("after cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	check()
}

// Output is always drained: without a Logger, a child writing 10 MiB to
// each of stdout and stderr finishes.
func TestDaemonDrainsOutput(t *testing.T) {
	check := leakCheck(t)
	for _, withLogger := range []bool{false, true} {
		d := &Daemon{Cmd: sh(`head -c 10485760 /dev/zero; head -c 10485760 /dev/zero >&2; echo done >&2`)}
		if withLogger {
			// A Logger that drops everything below Error still drains.
			d.Logger = slog.New(slog.NewTextHandler(discardWriter{}, &slog.HandlerOptions{Level: slog.LevelError}))
		}
		if err := daemonRun(t, testCtx(t), d)("for a child writing 20 MiB"); err != nil {
			t.Errorf("Run (logger %v): %v", withLogger, err)
		}
	}
	check()
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestDaemonInvalid(t *testing.T) {
	if err := (&Daemon{}).Run(testCtx(t)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("Run without Cmd: %v, want ErrInvalidCommand", err)
	}
	if err := (&Daemon{Cmd: Command("")}).Run(testCtx(t)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("Run with an empty command: %v, want ErrInvalidCommand", err)
	}
	// A command that cannot start, with RestartNever, returns the start error.
	err := (&Daemon{Cmd: Command("netrunner-no-such-binary-xyz")}).Run(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "netrunner-no-such-binary-xyz") {
		t.Errorf("Run of a missing binary: %v", err)
	}
}

// A PTY command with a Logger runs, its terminal logged as stdout (the
// Logger must not ask for a stderr Stream, which a PTY cannot give), and a
// restarting Daemon does not retry it forever.
func TestDaemonPTYWithLogger(t *testing.T) {
	check := leakCheck(t)
	c := onPTY(sh(`echo on-the-terminal; exit 0`))
	d := &Daemon{Cmd: c, Restart: RestartOnFailure, Backoff: time.Millisecond}
	log := newDaemonLog(d)
	if err := daemonRun(t, testCtx(t), d)("for a PTY command with a Logger"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var msgs []string
	for _, r := range log.records(fromStream("stdout")) {
		msgs = append(msgs, r.msg)
	}
	if strings.Join(msgs, "|") != "on-the-terminal" {
		t.Errorf("terminal lines logged %q, want [on-the-terminal]", msgs)
	}
	if n := len(log.records(msgIs("started"))); n != 1 {
		t.Errorf("%d starts logged, want 1", n)
	}
	check()
}

// With a Logger (stderr read as a Stream for the log), the ExitError still
// carries the stderr tail.
func TestDaemonLoggerKeepsStderrTail(t *testing.T) {
	for _, withLogger := range []bool{false, true} {
		c := sh(`echo first >&2; echo bye >&2; exit 3`)
		d := &Daemon{Cmd: c}
		if withLogger {
			newDaemonLog(d)
		} else {
			c.Stderr = StderrStream // read by the Daemon too
		}
		err := daemonRun(t, testCtx(t), d)("for a failing run")
		ee := exitErr(t, err)
		if ee.Code != 3 || string(ee.Stderr) != "first\nbye\n" {
			t.Errorf("logger %v: ExitError code %d, Stderr %q; want 3 and the stderr tail", withLogger, ee.Code, ee.Stderr)
		}
		if !strings.Contains(err.Error(), "bye") {
			t.Errorf("logger %v: error %q does not quote the last stderr line", withLogger, err)
		}
	}
}

// An io.Reader Stdin could feed only the first run of a restarting Daemon:
// it is refused at once, before anything runs. An *os.File is handed to
// each run, and with RestartNever the one run reads the Reader.
func TestDaemonStdin(t *testing.T) {
	check := leakCheck(t)
	count := filepath.Join(t.TempDir(), "count")
	for _, policy := range []RestartPolicy{RestartOnFailure, RestartAlways} {
		c := counterScript(count, "cat")
		c.Stdin = strings.NewReader("input\n")
		err := (&Daemon{Cmd: c, Restart: policy}).Run(testCtx(t))
		if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(errString(err), "Stdin") {
			t.Errorf("policy %d with a Reader Stdin: %v, want ErrInvalidCommand about Stdin", policy, err)
		}
	}
	if n := readCount(t, count); n != 0 {
		t.Errorf("a refused Daemon ran its command %d times", n)
	}

	c := sh("cat")
	c.Stdin = strings.NewReader("read-once\n")
	d := &Daemon{Cmd: c}
	log := newDaemonLog(d)
	if err := daemonRun(t, testCtx(t), d)("with a Reader Stdin and RestartNever"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if recs := log.records(fromStream("stdout")); len(recs) != 1 || recs[0].msg != "read-once" {
		t.Errorf("stdout records %v, want the Reader's line", recs)
	}

	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	c = counterScript(count, `cat`)
	c.Stdin = f
	d = &Daemon{Cmd: c, Restart: RestartAlways, Backoff: time.Millisecond}
	log = newDaemonLog(d)
	wait := daemonRun(t, ctx, d)
	log.waitRecords(t, 3, "three starts with an *os.File Stdin", msgIs("started"))
	cancel()
	if err := wait("after cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	f.Close()
	check()
}
