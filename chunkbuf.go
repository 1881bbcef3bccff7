package netrunner

import "sync"

// Where a read's buffer comes from. A consumer parked on an idle pipe holds
// no chunk buffer: the read waits for the pipe to turn readable first and
// takes its buffer then (see readFile), so that thousands of idle processes
// with a consumer each cost no ChunkSize apiece.
type bufSource int

const (
	bufCaller bufSource = iota // the caller's buffer, held throughout (Read, WriteTo)
	bufPooled                  // Next's: from chunkPool, returned while waiting
	bufFresh                   // a new one per chunk, its receiver's to keep (the pump)
)

// chunkPools holds one pool of chunk buffers per ChunkSize in use. A
// buffer goes back while its Stream waits for data and comes out again when
// data is there, so a stream that flows keeps the same buffer without
// allocating, and one that waits holds none.
var chunkPools sync.Map // int → *sync.Pool of *[]byte

func chunkPool(size int) *sync.Pool {
	if p, ok := chunkPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := chunkPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// takeBuf returns a buffer for a read of src once data is there.
func (s *Stream) takeBuf(src bufSource) []byte {
	if src == bufFresh {
		return make([]byte, s.chunkSize)
	}
	if s.nextBuf == nil {
		if s.pool == nil {
			s.pool = chunkPool(s.chunkSize)
		}
		s.nextBuf = s.pool.Get().(*[]byte)
	}
	return *s.nextBuf
}

// dropBuf gives up the buffer of a read that waits, and reports whether it
// did: the caller's own is kept.
func (s *Stream) dropBuf(src bufSource) bool {
	switch src {
	case bufPooled:
		if s.nextBuf != nil {
			s.pool.Put(s.nextBuf)
			s.nextBuf = nil
		}
		return true
	case bufFresh:
		return true
	}
	return false
}
