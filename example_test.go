//go:build !windows

package netrunner_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/netrunner-go/netrunner"
)

func ExampleCmd_Output() {
	out, err := netrunner.Command("echo", "hello, world").Output(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", out)
	// Output: hello, world
}

// A context bounds the whole run: when it ends, the process group gets
// SIGTERM (then SIGKILL after KillTimeout) and is reaped before Output returns.
func ExampleCmd_Output_timeout() {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	_, err := netrunner.Command("sleep", "10").Output(ctx)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}

func ExampleCmd_Run() {
	cmd := netrunner.Command("sh", "-c", "echo out; echo oops >&2; exit 3")
	res, err := cmd.Run(context.Background())

	var exitErr *netrunner.ExitError
	if errors.As(err, &exitErr) {
		fmt.Println("exit code:", exitErr.Code)
	}
	fmt.Printf("stdout: %s", res.Stdout)
	fmt.Printf("stderr: %s", res.Stderr) // StderrTail, the default, keeps the last 64 KiB
	// Output:
	// exit code: 3
	// stdout: out
	// stderr: oops
}

// Chunks yields stdout as it comes, one read at a time; the process runs no
// further ahead of the loop than the pipe buffer lets it.
func ExampleCmd_Chunks() {
	cmd := netrunner.Command("head", "-c", "10000000", "/dev/zero")
	cmd.ChunkSize = 32 << 10

	var total, largest int
	for chunk, err := range cmd.Chunks(context.Background()) {
		if err != nil {
			log.Fatal(err) // the final error: start failure, read error, *ExitError
		}
		total += len(chunk)
		largest = max(largest, len(chunk))
	}
	fmt.Println(total, "bytes, chunks of at most", cmd.ChunkSize, "bytes:", largest <= cmd.ChunkSize)
	// Output: 10000000 bytes, chunks of at most 32768 bytes: true
}

func ExampleCmd_Lines() {
	// The trailing "\n" or "\r\n" is stripped; a last line without one is kept.
	cmd := netrunner.Command("printf", `alpha\nbeta\r\ngamma`)
	for line, err := range cmd.Lines(context.Background()) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", line)
	}
	// Output:
	// "alpha"
	// "beta"
	// "gamma"
}

// Breaking out of the loop stops the process and reaps it before the range
// statement returns: nothing is left running.
func ExampleCmd_Lines_break() {
	for line, err := range netrunner.Command("seq", "1", "1000000000").Lines(context.Background()) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", line)
		if string(line) == "3" {
			break
		}
	}
	// Output:
	// 1
	// 2
	// 3
}

func ExampleCmd_Start() {
	ctx := context.Background()
	p, err := netrunner.Command("tr", "a-z", "A-Z").Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Write blocks while the pipe is full. Input this small fits; for more,
	// write from another goroutine while reading, or set Cmd.Stdin.
	if _, err := p.Write(ctx, []byte("hello, world\n")); err != nil {
		log.Fatal(err)
	}
	if err := p.CloseStdin(); err != nil { // tr sees EOF, flushes and exits
		log.Fatal(err)
	}
	out, err := io.ReadAll(p.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", out)
	// Output: HELLO, WORLD
}

// Request grants demand for chunks delivered on C, for a consumer that selects
// over several channels. Keeping a fixed number of requests outstanding bounds
// the memory held to that many chunks.
func ExampleStream_Request() {
	ctx := context.Background()
	p, err := netrunner.Command("head", "-c", "1000000", "/dev/zero").Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	s := p.Stdout
	s.Request(4) // read up to 4 chunks ahead
	var total int
	for chunk := range s.C() {
		total += len(chunk)
		s.Request(1) // one taken, one more may be read
	}
	if err := s.Err(); err != nil {
		log.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(total)
	// Output: 1000000
}

// Several commands run concurrently under an errgroup: the first failure
// cancels the group's context, which stops the commands still running.
func Example_errgroup() {
	words := []string{"alpha", "beta", "gamma", "delta"}
	results := make([]string, len(words)) // one slot each: printed in a fixed order

	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(2) // at most two processes at a time
	for i, w := range words {
		g.Go(func() error {
			cmd := netrunner.Command("tr", "a-z", "A-Z")
			cmd.Stdin = strings.NewReader(w)
			out, err := cmd.Output(ctx)
			results[i] = string(out)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Join(results, " "))
	// Output: ALPHA BETA GAMMA DELTA
}

func ExamplePipeline() {
	ctx := context.Background()
	p, err := netrunner.Pipeline(
		netrunner.Command("printf", `pear\napple\nfig\n`),
		netrunner.Command("sort"),
		netrunner.Command("head", "-n", "2"),
	).Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	out, err := io.ReadAll(p.Stdout) // the last stage's stdout; the others talk through kernel pipes
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil { // nil: every stage succeeded
		log.Fatal(err)
	}
	fmt.Print(string(out))
	// Output:
	// apple
	// fig
}

func ExampleDaemon() {
	// Each line of output becomes a log record; drop what changes from run
	// to run (time, pid, duration) so the example's output is stable.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "pid", "ran":
				return slog.Attr{}
			}
			return a
		},
	}))
	d := &netrunner.Daemon{
		Cmd:     netrunner.Command("echo", "serving"),
		Restart: netrunner.RestartNever, // RestartOnFailure and RestartAlways restart it with backoff
		Logger:  logger,
	}
	if err := d.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// level=INFO msg=started cmd="echo serving"
	// level=INFO msg=serving cmd="echo serving" stream=stdout
	// level=INFO msg=exited cmd="echo serving" status="exit status 0"
}

func ExampleStream_Next() {
	ctx := context.Background()
	p, err := netrunner.Command("head", "-c", "1000000", "/dev/zero").Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	total := 0
	for {
		chunk, err := p.Stdout.Next(ctx) // valid until the next call of Next
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		total += len(chunk)
	}
	if err := p.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(total, "bytes")
	// Output: 1000000 bytes
}

func ExampleStream_WriteTo() {
	ctx := context.Background()
	p, err := netrunner.Command("echo", "straight to stdout").Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Into a pipe, socket or file, the bytes move with splice(2), never
	// through the Go heap; the child writes only as fast as w accepts.
	if _, err := p.Stdout.WriteTo(os.Stdout); err != nil {
		log.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: straight to stdout
}

func ExampleProcess_Stop() {
	ctx := context.Background()
	c := netrunner.Command("sleep", "60")
	c.KillTimeout = 2 * time.Second // SIGTERM, then SIGKILL after 2s if it still runs
	p, err := c.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	err = p.Stop(ctx) // returns what Wait returns
	var ee *netrunner.ExitError
	if errors.As(err, &ee) {
		fmt.Println("ended by", ee.Signal)
	}
	// Output: ended by terminated
}

func ExampleWatchdogErr() {
	if _, err := netrunner.Command("true").Output(context.Background()); err != nil {
		log.Fatal(err)
	}
	// On Linux, children die with the program, even if it is SIGKILLed.
	if err := netrunner.WatchdogErr(); err != nil {
		fmt.Println("children are not protected:", err)
		return
	}
	fmt.Println("children are protected")
	// Output: children are protected
}
