package netrunner

import (
	"bytes"
	"fmt"
	"io"
	"math"
)

// lineReader splits a stream of chunks into lines.
//
// A line that lies wholly inside one chunk is returned as a subslice of that chunk; only a line that
// spans chunks is copied, into carry. carry is reused from line to line and never holds more than
// limit+1 bytes (a line at the limit plus a '\r' that may yet turn out to be half of a "\r\n"), so a
// long line costs bounded memory.
//
// In split mode a '\r' is part of the terminator only when it is directly before the '\n' (or is the
// last byte of the input), wherever the piece boundaries fall: a '\r' that lands at the start of a
// piece is held back until the next byte shows whether it ends the line. So the pieces are always the
// line, as bufio.ScanLines would return it, cut every limit bytes.
type lineReader struct {
	next  func() ([]byte, error)
	limit int
	split bool

	buf   []byte // unread rest of the current chunk
	carry []byte // start of the current line, copied from earlier chunks
	drop  int    // bytes at the front of carry that the last Line call consumed
	err   error  // from next, returned once the lines before it are; or the sticky too-long error
}

// newLineReader returns a lineReader that pulls chunks from next. next returns the next chunk (which is
// only valid until next is called again) or an error; io.EOF ends the input. limit is the longest line
// allowed (in bytes, not counting the terminator). When split is false, a longer line makes Line return
// an error wrapping ErrLineTooLong (and the reader stays failed); when split is true, a longer line is
// returned in pieces of exactly limit bytes (the last piece holding the rest) and reading goes on.
// A chunk that comes along with an error is used too, as with io.Reader, before the error is returned.
func newLineReader(next func() ([]byte, error), limit int, split bool) *lineReader {
	if limit < 1 {
		panic("netrunner: line limit must be positive")
	}
	// No line can be this long anyway; the cap keeps limit+2 below from overflowing.
	return &lineReader{next: next, limit: min(limit, math.MaxInt/2), split: split}
}

// Line returns the next line without its trailing "\n" or "\r\n". The returned slice is valid only until
// the next call to Line. The last line may lack a terminator; a trailing "\r" on such a final line is dropped
// (as bufio.ScanLines does). After the last line, Line returns io.EOF. Any other error from next is returned
// as is (after the lines already complete in earlier chunks have been returned); the unfinished line it cut
// off is dropped, since passing it on would present a fragment as a whole line.
func (l *lineReader) Line() ([]byte, error) {
	for {
		l.carry = l.carry[:copy(l.carry, l.carry[l.drop:])]
		l.drop = 0

		// The line so far is carry+buf[:i], and n is its length without terminator, taking a trailing
		// '\r' as part of one. Looking further than limit+2 bytes is pointless: without a '\n' by then
		// the line is too long, and bounding the search keeps cutting a long chunk into pieces linear.
		w := l.buf[:min(len(l.buf), l.limit-len(l.carry)+2)]
		i := bytes.IndexByte(w, '\n')
		found := i >= 0
		if !found {
			i = len(w)
		}
		n := len(l.carry) + i
		if l.endsInCR(i) {
			n--
		}

		switch {
		case n > l.limit && !l.split:
			// Fail now rather than read on to the end of a line that may never end.
			l.err = fmt.Errorf("line longer than %d bytes: %w", l.limit, ErrLineTooLong)
			l.buf, l.carry = nil, nil
			return nil, l.err
		case n > l.limit:
			// Some of the line is certain to follow this piece, so no empty piece ever ends a line.
			c := len(l.carry)
			piece := l.join(l.limit)
			l.buf = l.buf[max(l.limit-c, 0):]
			l.drop = min(len(l.carry), l.limit) // a held-back '\r' stays in carry
			return piece, nil
		case found || (l.err == io.EOF && len(l.carry)+i > 0):
			line := l.join(n)
			l.buf = l.buf[min(i+1, len(l.buf)):]
			l.drop = len(l.carry)
			return line, nil
		case l.err != nil:
			return nil, l.err
		default:
			// The chunk ends inside a line: keep its start before next invalidates the chunk.
			l.keep(l.buf)
			l.buf, l.err = l.next()
		}
	}
}

// endsInCR reports whether carry+buf[:i] ends in '\r'.
func (l *lineReader) endsInCR(i int) bool {
	if i > 0 {
		return l.buf[i-1] == '\r'
	}
	return len(l.carry) > 0 && l.carry[len(l.carry)-1] == '\r'
}

// join returns the first n bytes of carry+buf, copying only when the line began in an earlier chunk.
// The caller advances buf.
func (l *lineReader) join(n int) []byte {
	if len(l.carry) == 0 {
		return l.buf[:n]
	}
	if k := n - len(l.carry); k > 0 {
		l.keep(l.buf[:k])
	}
	return l.carry[:n]
}

// keep appends p to carry. It grows carry itself, doubling up to limit+1 bytes and no further, so that
// a generous limit costs nothing until a line actually gets that long.
func (l *lineReader) keep(p []byte) {
	if need := len(l.carry) + len(p); need > cap(l.carry) {
		c := make([]byte, len(l.carry), min(max(need, 2*cap(l.carry)), l.limit+1))
		copy(c, l.carry)
		l.carry = c
	}
	l.carry = append(l.carry, p...)
}
