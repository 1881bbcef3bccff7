package netrunner

import (
	"context"
	"math"
)

// Demand is the credit a consumer grants with Request: how many chunks the
// Stream may read ahead of the consumer and deliver on C. A single pump
// goroutine, started by the first Request, spends the credit one chunk at a
// time; without credit it reads nothing, so the data stays in the kernel pipe
// and the child blocks in write(2) once the pipe is full.
//
// C is closed exactly once, by whoever owns it: the pump once started,
// otherwise endDemand. That is what lets the pump send on C without racing a
// close.

// demand is a Stream's read-ahead state; the Stream's mu guards it.
type demand struct {
	credit      int  // chunks granted and not yet read
	pumping     bool // the pump goroutine runs
	demandEnded bool // C is closed or about to be: no more credit
	c           chan []byte
	wake        chan struct{} // tells a pump without credit that some came
}

// chunksAhead is how many read-ahead chunks C holds before the pump waits
// for the receiver; demand beyond it is read as the receiver drains C.
const chunksAhead = 16

func newDemand() demand {
	return demand{c: make(chan []byte, chunksAhead), wake: make(chan struct{}, 1)}
}

// Request grants demand for n more chunks: up to n chunks are read ahead
// and delivered on C. The receiver owns each chunk it receives. n <= 0 does
// nothing, as does a Request after the Stream ended.
func (s *Stream) Request(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	if s.demandEnded {
		s.mu.Unlock()
		return
	}
	if s.credit > math.MaxInt-n {
		s.credit = math.MaxInt
	} else {
		s.credit += n
	}
	if !s.pumping {
		s.pumping = true
		go s.pump()
	}
	s.mu.Unlock()
	s.wakePump()
}

// C returns the channel on which requested chunks arrive. It is closed at the
// end of the Stream, after which Err says why.
func (s *Stream) C() <-chan []byte { return s.c }

func (s *Stream) wakePump() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// takeCredit blocks until there is credit to spend, and spends one; false
// means the Stream ended.
func (s *Stream) takeCredit() bool {
	for {
		s.mu.Lock()
		ended, ok := s.demandEnded, s.credit > 0
		if ok && !ended {
			s.credit--
		}
		s.mu.Unlock()
		if ended {
			return false
		}
		if ok {
			return true
		}
		select {
		case <-s.wake:
		case <-s.closed:
			return false
		}
	}
}

func (s *Stream) pump() {
	defer close(s.c)
	for s.takeCredit() {
		// Each chunk is a fresh buffer because the receiver owns it; the
		// bound on memory is the outstanding credit, not a pool.
		b := make([]byte, s.chunkSize)
		n, err := s.read(context.Background(), b)
		if n > 0 {
			select {
			case s.c <- b[:n:n]:
			case <-s.closed:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// endDemand stops read-ahead once the Stream has ended, closing C if no pump
// owns it.
func (s *Stream) endDemand() {
	s.mu.Lock()
	if s.demandEnded {
		s.mu.Unlock()
		return
	}
	s.demandEnded = true
	pumping := s.pumping
	s.mu.Unlock()
	if pumping {
		s.wakePump()
	} else {
		close(s.c)
	}
}
