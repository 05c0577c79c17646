package dedup_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// cutReader returns its data, then the error a cut connection gives.
type cutReader struct {
	r   io.Reader
	err error
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, c.err
	}
	return n, err
}

// A reader that ends with io.ErrUnexpectedEOF (a stream cut mid-message)
// must fail Put: the bytes are not the whole body.
func TestPutTruncatedReader(t *testing.T) {
	s, err := filededup.OpenStore("/d", &filededup.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	defer s.Close()
	for _, size := range []int{10, 64 << 10, 200 << 10} {
		_, err := s.Put(context.Background(), &cutReader{r: strings.NewReader(strings.Repeat("x", size)), err: io.ErrUnexpectedEOF})
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "Put of a reader cut after %d bytes must fail, not store a truncated blob", size)
	}
}
