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
// close. Its channels are made by the first Request or C: most Streams are
// read by Next, Read or WriteTo, and a process that is started and left
// running should not hold them.

// demand is a Stream's read-ahead state; the Stream's mu guards it.
type demand struct {
	credit      int           // chunks granted and not yet read
	pumping     bool          // the pump goroutine runs
	demandEnded bool          // C is closed or about to be: no more credit
	cClosed     bool          // C was closed without a pump
	c           chan []byte   // made by the first Request or C, under mu
	wake        chan struct{} // tells a pump without credit that some came; made with the pump
}

// chunksAhead is how many read-ahead chunks C holds before the pump waits
// for the receiver; demand beyond it is read as the receiver drains C.
const chunksAhead = 16

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
		s.makeC()
		s.wake = make(chan struct{}, 1)
		go s.pump()
	}
	s.mu.Unlock()
	s.wakePump()
}

// C returns the channel on which requested chunks arrive. It is closed at the
// end of the Stream, after which Err says why.
func (s *Stream) C() <-chan []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.makeC()
	if s.demandEnded && !s.pumping && !s.cClosed {
		s.cClosed = true // ended before anyone asked for C: no pump will close it
		close(s.c)
	}
	return s.c
}

// makeC makes C, once; under mu.
func (s *Stream) makeC() {
	if s.c == nil {
		s.c = make(chan []byte, chunksAhead)
	}
}

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
		// bound on memory is the outstanding credit, not a pool. It is
		// made once the pipe has data: a pump waiting holds none.
		b, n, err := s.readFresh()
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

func (s *Stream) readFresh() ([]byte, int, error) {
	ctx := context.Background()
	if err := s.acquire(ctx); err != nil {
		return nil, 0, err
	}
	defer s.release()
	return s.readLocked(ctx, nil, bufFresh)
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
	c := s.c
	if c != nil && !pumping {
		s.cClosed = true
	}
	s.mu.Unlock()
	if pumping {
		s.wakePump()
	} else if c != nil {
		close(c)
	}
}
