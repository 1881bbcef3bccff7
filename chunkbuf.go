package netrunner

import (
	"math/bits"
	"sync"
)

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

// chunkPools holds chunk buffers by size class, the powers of two up to
// maxChunkSize (1<<26): a bounded set of pools whatever ChunkSizes are in
// use. A buffer goes back while its Stream waits for data and comes out
// again when data is there, so a stream that flows keeps the same buffer
// without allocating, and one that waits holds none.
var chunkPools [27]sync.Pool // of *[]byte

func getChunk(size int) *[]byte {
	class := bits.Len(uint(size - 1))
	if b, ok := chunkPools[class].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<class)
	return &b
}

func putChunk(b *[]byte) { chunkPools[bits.Len(uint(cap(*b)-1))].Put(b) }

// takeBuf returns a buffer for a read of src once data is there.
func (s *Stream) takeBuf(src bufSource) []byte {
	if src == bufFresh {
		return make([]byte, s.chunkSize)
	}
	if s.nextBuf == nil {
		s.nextBuf = getChunk(s.chunkSize)
	}
	return (*s.nextBuf)[:s.chunkSize]
}

// dropBuf gives up the buffer of a read that waits, and reports whether it
// did: the caller's own is kept.
func (s *Stream) dropBuf(src bufSource) bool {
	switch src {
	case bufPooled:
		if s.nextBuf != nil {
			putChunk(s.nextBuf)
			s.nextBuf = nil
		}
		return true
	case bufFresh:
		return true
	}
	return false
}
