package netrunner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

var errLinesTest = errors.New("test: read failed")

// lineChunks serves chunks to a lineReader, then end (io.EOF if nil). Every chunk is copied into a
// buffer that the next call overwrites, so a reader holding on to an old chunk reads garbage. Calling
// it again after end fails the test.
func lineChunks(t testing.TB, chunks [][]byte, end error) func() ([]byte, error) {
	if end == nil {
		end = io.EOF
	}
	var scratch []byte
	done := false
	return func() ([]byte, error) {
		for i := range scratch {
			scratch[i] = '\n'
		}
		if len(chunks) == 0 {
			if done {
				t.Fatal("next called again after it returned an error")
			}
			done = true
			return nil, end
		}
		if len(chunks[0]) > len(scratch) {
			scratch = make([]byte, 2*len(chunks[0]))
		}
		c := scratch[:copy(scratch, chunks[0]):len(chunks[0])]
		chunks = chunks[1:]
		return c, nil
	}
}

// readLines calls Line until it fails and returns copies of the lines and the error. It checks the error
// is sticky and that carry stays within limit+1 bytes.
func readLines(t testing.TB, l *lineReader, maxLines int) ([]string, error) {
	t.Helper()
	var lines []string
	for {
		line, err := l.Line()
		if cap(l.carry) > l.limit+1 {
			t.Fatalf("carry grew to %d bytes, limit is %d", cap(l.carry), l.limit)
		}
		if err != nil {
			if line != nil {
				t.Errorf("Line returned %q along with error %v", line, err)
			}
			if _, again := l.Line(); again != err {
				t.Errorf("after error %v, Line returned %v", err, again)
			}
			return lines, err
		}
		lines = append(lines, string(line))
		if len(lines) > maxLines {
			t.Fatalf("more than %d lines: %q", maxLines, lines)
		}
	}
}

func splitEveryN(s string, n int) [][]byte {
	var out [][]byte
	for len(s) > n {
		out = append(out, []byte(s[:n]))
		s = s[n:]
	}
	return append(out, []byte(s))
}

func TestLineReader(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		end    error // what next returns after the chunks; nil means io.EOF
		limit  int
		split  bool
		want   []string
		err    error // nil means io.EOF
	}{
		{name: "empty", chunks: nil, want: nil},
		{name: "empty chunks", chunks: []string{"", "", ""}, want: nil},
		{name: "one newline", chunks: []string{"\n"}, want: []string{""}},
		{name: "final line without newline", chunks: []string{"a\nb"}, want: []string{"a", "b"}},
		{name: "crlf", chunks: []string{"a\r\nb\r\n"}, want: []string{"a", "b"}},
		{name: "empty lines", chunks: []string{"a\n\n\r\n\nb\n"}, want: []string{"a", "", "", "", "b"}},
		{name: "final cr dropped", chunks: []string{"a\r"}, want: []string{"a"}},
		{name: "lone final cr", chunks: []string{"a\n\r"}, want: []string{"a", ""}},
		{name: "lone cr kept", chunks: []string{"a\rb\n\rc\r"}, want: []string{"a\rb", "\rc"}},
		{name: "only one cr dropped", chunks: []string{"a\r\r\nb\r\r"}, want: []string{"a\r", "b\r"}},
		{name: "crlf across chunks", chunks: []string{"a\r", "\nb\r", "", "\n"}, want: []string{"a", "b"}},
		{name: "line across chunks", chunks: []string{"ab", "", "cd", "e\nf", "g"}, want: []string{"abcde", "fg"}},

		{name: "exactly limit", limit: 3, chunks: []string{"abc\nabc\r\nabc"}, want: []string{"abc", "abc", "abc"}},
		{name: "exactly limit final cr", limit: 3, chunks: []string{"abc\r"}, want: []string{"abc"}},
		{name: "crlf at limit across chunks", limit: 3, chunks: []string{"ab", "c\r", "\nd\n"}, want: []string{"abc", "d"}},
		{name: "limit+1", limit: 3, chunks: []string{"ok\nabcd\nlater\n"}, want: []string{"ok"}, err: ErrLineTooLong},
		{name: "limit+1 no newline", limit: 3, chunks: []string{"ok\n", "abcd"}, want: []string{"ok"}, err: ErrLineTooLong},
		{name: "cr then more is too long", limit: 3, chunks: []string{"abc\r", "d\n"}, err: ErrLineTooLong},
		{name: "cr cr is too long", limit: 3, chunks: []string{"abc\r\r\n"}, err: ErrLineTooLong},

		{name: "split", split: true, limit: 2, chunks: []string{"abcde\n"}, want: []string{"ab", "cd", "e"}},
		{name: "split exact multiple", split: true, limit: 2, chunks: []string{"abcd\nef\n\n"}, want: []string{"ab", "cd", "ef", ""}},
		{name: "split crlf", split: true, limit: 2, chunks: []string{"abcd\r\nabcde\r\n"}, want: []string{"ab", "cd", "ab", "cd", "e"}},
		{name: "split crlf at boundary across chunks", split: true, limit: 2, chunks: []string{"abcd\r", "\n"}, want: []string{"ab", "cd"}},
		{name: "split cr at boundary kept", split: true, limit: 2, chunks: []string{"abcd\r", "x\n"}, want: []string{"ab", "cd", "\rx"}},
		{name: "split cr cr", split: true, limit: 2, chunks: []string{"ab\r\r\n"}, want: []string{"ab", "\r"}},
		{name: "split final cr", split: true, limit: 2, chunks: []string{"abcd\r"}, want: []string{"ab", "cd"}},
		{name: "split final line", split: true, limit: 2, chunks: []string{"a\nbcd"}, want: []string{"a", "bc", "d"}},

		{name: "error after lines", chunks: []string{"a\nb", "\nc"}, end: errLinesTest, want: []string{"a", "b"}, err: errLinesTest},
		{name: "error after crlf", chunks: []string{"a\r\n"}, end: errLinesTest, want: []string{"a"}, err: errLinesTest},
		{name: "error drops partial cr", chunks: []string{"a\n\r"}, end: errLinesTest, want: []string{"a"}, err: errLinesTest},
		{name: "error at once", end: errLinesTest, err: errLinesTest},
		{name: "split error after pieces", split: true, limit: 2, chunks: []string{"abcde"}, end: errLinesTest, want: []string{"ab", "cd"}, err: errLinesTest},
		{name: "too long before error", limit: 2, chunks: []string{"a\nabc"}, end: errLinesTest, want: []string{"a"}, err: ErrLineTooLong},
	}
	for _, tt := range tests {
		if tt.limit == 0 {
			tt.limit = 100
		}
		if tt.err == nil {
			tt.err = io.EOF
		}
		input := strings.Join(tt.chunks, "")
		chunkings := map[string][][]byte{"single chunk": {[]byte(input)}, "bytes": splitEveryN(input, 1)}
		if tt.chunks != nil {
			chunkings["as given"] = nil
			for _, c := range tt.chunks {
				chunkings["as given"] = append(chunkings["as given"], []byte(c))
			}
		}
		for how, chunks := range chunkings {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				l := newLineReader(lineChunks(t, chunks, tt.end), tt.limit, tt.split)
				got, err := readLines(t, l, len(input)+1)
				if !errors.Is(err, tt.err) {
					t.Errorf("error = %v, want %v", err, tt.err)
				}
				if errors.Is(err, ErrLineTooLong) {
					if want := fmt.Sprintf("line longer than %d bytes: %v", tt.limit, ErrLineTooLong); err.Error() != want {
						t.Errorf("error = %q, want %q", err, want)
					}
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
					t.Errorf("lines = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// TestLineReaderTooLongEarly checks the too-long error comes as soon as it is certain, without waiting
// for the rest of the line, and not before: "abc\r" may still end in "\n".
func TestLineReaderTooLongEarly(t *testing.T) {
	calls := 0
	chunks := []string{"abc\r", "d", "never read"}
	l := newLineReader(func() ([]byte, error) {
		calls++
		return []byte(chunks[calls-1]), nil
	}, 3, false)
	if _, err := l.Line(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("error = %v, want ErrLineTooLong", err)
	}
	if calls != 2 {
		t.Errorf("next called %d times, want 2", calls)
	}
}

// TestLineReaderChunkWithError checks that data returned along with an error is not lost.
func TestLineReaderChunkWithError(t *testing.T) {
	for _, end := range []error{io.EOF, errLinesTest} {
		calls := 0
		l := newLineReader(func() ([]byte, error) {
			calls++
			if calls > 1 {
				t.Fatal("next called again after it returned an error")
			}
			return []byte("a\r\nb\r"), end
		}, 10, false)
		got, err := readLines(t, l, 10)
		want := "[\"a\" \"b\"]"
		if end != io.EOF {
			want = "[\"a\"]" // b is unfinished
		}
		if err != end || fmt.Sprintf("%q", got) != want {
			t.Errorf("with %v: got %q, %v; want %s, %v", end, got, err, want, end)
		}
	}
}

// TestLineReaderZeroCopy checks lines inside a chunk are subslices of it. (An unterminated last line
// is copied: the reader has to call next to learn that it is the last, and that invalidates the chunk.)
func TestLineReaderZeroCopy(t *testing.T) {
	chunk := []byte("ab\ncd\r\nefgh\nlast\n")
	sent := false
	next := func() ([]byte, error) {
		if sent {
			return nil, io.EOF
		}
		sent = true
		return chunk, nil
	}
	l := newLineReader(next, 3, true)
	for _, off := range []int{0, 3, 7, 10, 12, 15} { // ab cd efg h las t
		line, err := l.Line()
		if err != nil {
			t.Fatal(err)
		}
		if &line[0] != &chunk[off] {
			t.Errorf("line %q is not a subslice of the chunk at %d", line, off)
		}
	}
	if _, err := l.Line(); err != io.EOF {
		t.Errorf("error = %v, want io.EOF", err)
	}
	if cap(l.carry) != 0 {
		t.Errorf("carry allocated for lines inside one chunk")
	}
}

// TestLineReaderAllocs checks that in steady state Line does not allocate, both for lines inside a
// chunk and for lines spanning chunks (which reuse carry).
func TestLineReaderAllocs(t *testing.T) {
	data := []byte(strings.Repeat("hello, world\r\n\nsome longer line of text\n", 50))
	for _, size := range []int{len(data), 7, 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			pos := 0
			next := func() ([]byte, error) { // cycles through data forever
				c := data[pos:min(pos+size, len(data))]
				pos = (pos + len(c)) % len(data)
				return c, nil
			}
			l := newLineReader(next, 64, false)
			for range 100 {
				if _, err := l.Line(); err != nil {
					t.Fatal(err)
				}
			}
			if n := testing.AllocsPerRun(1000, func() {
				if _, err := l.Line(); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Line allocates %v times per call", n)
			}
		})
	}
}

// referenceLines is what a lineReader should return for in, following bufio.Scanner with
// bufio.ScanLines plus the limit rules. If end is not io.EOF, the unterminated tail is not a line, but
// pieces of it (or the too-long error) that are certain before end are still expected.
func referenceLines(in []byte, limit int, split bool, end error) ([]string, error) {
	tail := []byte(nil)
	if end != io.EOF {
		cut := bytes.LastIndexByte(in, '\n') + 1
		in, tail = in[:cut], in[cut:]
	}
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(in))
	sc.Buffer(make([]byte, len(in)+1), len(in)+1)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > limit && !split {
			return want, ErrLineTooLong
		}
		for len(line) > limit {
			want, line = append(want, line[:limit]), line[limit:]
		}
		want = append(want, line)
	}
	if err := sc.Err(); err != nil {
		panic(err)
	}
	if end == io.EOF {
		return want, io.EOF
	}
	for len(bytes.TrimSuffix(tail, []byte("\r"))) > limit {
		if !split {
			return want, ErrLineTooLong
		}
		want, tail = append(want, string(tail[:limit])), tail[limit:]
	}
	return want, end
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte(""), uint64(0), byte(3), byte(0))
	f.Add([]byte("a\nb"), uint64(1), byte(0), byte(0))
	f.Add([]byte("abc\r\nabcd\r\n\r\n\n\rx\r"), uint64(2), byte(2), byte(0))
	f.Add([]byte("abc\r\nabcd\r\n\r\n\n\rx\r"), uint64(3), byte(2), byte(1))
	f.Add([]byte("abcd\r\rxy\r\nabcdef\r"), uint64(4), byte(1), byte(1))
	f.Add([]byte("ab\ncdefgh\r"), uint64(5), byte(1), byte(2))
	f.Add([]byte("ab\ncdefgh\r"), uint64(6), byte(1), byte(3))
	f.Add([]byte(strings.Repeat("x", 200)+"\r\n"+strings.Repeat("y\r", 40)), uint64(7), byte(63), byte(1))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, limitByte, flags byte) {
		limit := int(limitByte%64) + 1
		split := flags&1 != 0
		end := io.EOF
		if flags&2 != 0 {
			end = errLinesTest
		}
		rng := rand.New(rand.NewPCG(seed, uint64(len(in))))
		maxChunk := 1 + rng.IntN(2*limit+4)
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := min(rng.IntN(maxChunk+1), len(rest))
			chunks, rest = append(chunks, rest[:n]), rest[n:]
		}
		if rng.IntN(2) == 0 {
			chunks = append(chunks, nil)
		}

		want, wantErr := referenceLines(in, limit, split, end)
		l := newLineReader(lineChunks(t, chunks, end), limit, split)
		got, err := readLines(t, l, len(in)+1)
		if !errors.Is(err, wantErr) {
			t.Errorf("error = %v, want %v", err, wantErr)
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("limit %d split %v chunks %q\nlines = %q\nwant    %q", limit, split, chunks, got, want)
		}
	})
}
