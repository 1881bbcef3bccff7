package netrunner

// rawRead is empty on Windows, where a pipe cannot be waited on without a
// read in progress: the buffer is taken before the read waits.
type rawRead struct{}

func (s *Stream) readFile(b []byte, src bufSource) ([]byte, int, error) {
	if b == nil {
		b = s.takeBuf(src)
	}
	n, err := s.file.Read(b)
	return b, n, err
}
