package killtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenSyncCutsTornLine: a child killed in the middle of a line leaves
// it torn; the next child's first line must not be glued to it.
func TestOpenSyncCutsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enq")
	require.NoError(t, os.WriteFile(path, []byte("first\nsecond-torn-by-a-k"), 0o644))
	f, err := openSync(path)
	require.NoError(t, err)
	require.NoError(t, f.line("third"))
	require.NoError(t, f.f.Close())
	require.Equal(t, [][]string{{"first"}, {"third"}}, readLines(t, path))

	// A file of whole lines is left alone.
	f, err = openSync(path)
	require.NoError(t, err)
	require.NoError(t, f.line("fourth"))
	require.NoError(t, f.f.Close())
	require.Equal(t, [][]string{{"first"}, {"third"}, {"fourth"}}, readLines(t, path))

	// A torn tail longer than one read of the tail, and a file that is
	// all torn line.
	require.NoError(t, os.WriteFile(path, append([]byte("kept\n"), bytes.Repeat([]byte("x"), 10000)...), 0o644))
	f, err = openSync(path)
	require.NoError(t, err)
	require.NoError(t, f.f.Close())
	require.Equal(t, [][]string{{"kept"}}, readLines(t, path))
	require.NoError(t, os.WriteFile(path, []byte("torn"), 0o644))
	f, err = openSync(path)
	require.NoError(t, err)
	require.NoError(t, f.line("fresh"))
	require.NoError(t, f.f.Close())
	require.Equal(t, [][]string{{"fresh"}}, readLines(t, path))
}
