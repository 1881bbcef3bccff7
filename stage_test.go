//go:build linux

package netrunner

import (
	"bytes"
	"io"
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
