//go:build linux

package netrunner

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"testing"
)

// past2GiB is more than an int32 counts: byte counters that wrap on 32-bit
// systems show it.
const past2GiB int64 = 1<<31 + 1<<20 // 2 GiB and 1 MiB

// Counters, WriteTo's total and what reaches a child stay exact past 2 GiB
// (run with GOARCH=386 to check a 32-bit build).
func TestCountersPast2GiB(t *testing.T) {
	ctx := testCtx(t)

	p := start(t, ctx, Command("head", "-c", strconv.FormatInt(past2GiB, 10), "/dev/zero"))
	n, err := p.Stdout.WriteTo(io.Discard)
	if err != nil || n != past2GiB {
		t.Errorf("WriteTo: %d bytes, %v; want %d", n, err, past2GiB)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.BytesOut != past2GiB || st.Reads <= 0 {
		t.Errorf("Stats after streaming %d bytes: BytesOut %d, Reads %d", past2GiB, st.BytesOut, st.Reads)
	}

	c := Command("wc", "-c")
	c.Stdin = io.LimitReader(zeroReader{}, past2GiB)
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.TrimSpace(res.Stdout)); got != strconv.FormatInt(past2GiB, 10) {
		t.Errorf("wc -c counted %s bytes of stdin, want %d", got, past2GiB)
	}
	if res.Stats.BytesIn != past2GiB || res.Stats.Writes <= 0 {
		t.Errorf("Stats after feeding %d bytes: BytesIn %d, Writes %d", past2GiB, res.Stats.BytesIn, res.Stats.Writes)
	}
}

// exitChild is a child whose exit descriptor is a pipe: readable once
// "exited".
type exitChild struct {
	child
	r *os.File
}

func (c exitChild) exitFD() int { return int(c.r.Fd()) }

// A context that ends after the child exited but before the reaping does
// not count as stopping it: exitedUnreaped sees the exit file readable.
func TestExitedUnreapedReadsTheExitFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	c := exitChild{r: r}
	if exitedUnreaped(c) {
		t.Error("exitedUnreaped before the exit file is readable = true")
	}
	w.Write([]byte{1})
	if !exitedUnreaped(c) {
		t.Error("exitedUnreaped once the exit file is readable = false")
	}
	if exitedUnreaped(&leaderless{}) {
		t.Error("exitedUnreaped of a child without an exit file = true")
	}
}

// leaderless is a child without an exit file.
type leaderless struct{ child }
