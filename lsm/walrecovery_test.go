package lsm_test

// WAL recovery tests build the damage a crash or a disk leaves in the newest
// write-ahead log of a closed DB, byte by byte, and check what Open makes of
// it in each WALRecoveryMode.

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// walImage is a closed DB whose only log holds one record per key, in
// order, none flushed to a table.
type walImage struct {
	files map[string][]byte // the DB's files by path
	fs    vfs.FS            // of the last open
	log   string            // path of the log
	data  []byte            // the log as written
	recs  [][2]int
	keys  []string
}

// buildWALImage writes n keys with values of about 300 bytes, one record
// each, with the given write options, and closes the DB.
func buildWALImage(t *testing.T, n int, wo *lsm.WriteOptions) *walImage {
	fs := vfs.NewMem()
	db, err := lsm.Open("db", &lsm.Options{FS: fs})
	require.NoError(t, err)
	img := &walImage{files: map[string][]byte{}}
	for i := range n {
		k := fmt.Sprintf("key/%03d", i)
		img.keys = append(img.keys, k)
		require.NoError(t, db.Set([]byte(k), bytes.Repeat([]byte{byte('a' + i%26)}, 280+i%40), wo))
	}
	require.NoError(t, db.Close())
	names, err := fs.List("db")
	require.NoError(t, err)
	for _, name := range names {
		require.False(t, strings.HasSuffix(name, ".sst"), "no table may hold the writes: %v", names)
		if name != "LOCK" {
			img.files["db/"+name] = readFile(t, fs, "db/"+name)
		}
		if strings.HasSuffix(name, ".log") {
			require.Empty(t, img.log, "one log: %v", names)
			img.log = "db/" + name
		}
	}
	img.data = img.files[img.log]
	img.recs = logRecords(img.data)
	require.Len(t, img.recs, n, "one record per write")
	return img
}

// open copies the image to a new file system, with data for the log, and
// opens the DB in mode, logging to logBuf.
func (img *walImage) open(t *testing.T, data []byte, mode lsm.WALRecoveryMode, logBuf *bytes.Buffer) (*lsm.DB, error) {
	img.fs = vfs.NewMem()
	require.NoError(t, img.fs.MkdirAll("db", 0o755))
	for name, d := range img.files {
		if name == img.log {
			d = data
		}
		f, err := img.fs.Create(name)
		require.NoError(t, err)
		_, err = f.Write(d)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	return lsm.Open("db", &lsm.Options{
		FS:          img.fs,
		WALRecovery: mode,
		Logger:      slog.New(slog.NewTextHandler(logBuf, nil)),
	})
}

// checkKeys checks that exactly the first n keys are there.
func (img *walImage) checkKeys(t *testing.T, db *lsm.DB, n int) {
	for i, k := range img.keys {
		_, err := db.Get([]byte(k))
		if i < n {
			require.NoError(t, err, "key %d of %d must be recovered", i, n)
		} else {
			require.ErrorIs(t, err, lsm.ErrNotFound, "key %d is after the damage (first %d recovered)", i, n)
		}
	}
}

// TestWALLostPageInUnsyncedTail is issue 16, item 1: a page of zeros in the
// unsynced tail of the newest log, with intact records after it (what
// out-of-order page writeback leaves after a power loss), made Open fail
// with "payload checksum mismatch ... but a valid record starts at ...".
// Nothing durable can follow such a hole, so Open must recover the records
// before it, drop the rest and report the loss. Strict mode refuses.
func TestWALLostPageInUnsyncedTail(t *testing.T) {
	img := buildWALImage(t, 60, lsm.NoSync)
	require.Greater(t, len(img.data), 4*vfs.CrashPageSize)
	for _, page := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("page=%d", page), func(t *testing.T) {
			from, to := page*vfs.CrashPageSize, (page+1)*vfs.CrashPageSize
			d := bytes.Clone(img.data)
			clear(d[from:to])
			// The records wholly before the page survive; of the rest, those
			// starting after the page are intact.
			kept, after := 0, 0
			for _, r := range img.recs {
				if r[1] <= from {
					kept++
				}
				if r[0] >= to {
					after++
				}
			}
			require.Positive(t, after, "intact records follow the hole")

			var logBuf bytes.Buffer
			db, err := img.open(t, d, lsm.WALRecoveryDropDamagedTail, &logBuf)
			require.NoError(t, err, "a lost page in the unsynced tail must not stop Open")
			img.checkKeys(t, db, kept)
			m := db.Metrics()
			require.Equal(t, int64(len(d)-img.recs[kept-1][1]), m.WALTailBytesDropped, "the dropped bytes are reported")
			require.Equal(t, int64(1+after), m.WALTailRecordsDropped, "the bad record and the intact ones after the hole are reported")
			require.Contains(t, logBuf.String(), "dropped the damaged tail", "Open warns on the logger")
			require.Contains(t, logBuf.String(), "lostPage=true")
			require.NoError(t, db.Close())

			db, err = img.open(t, d, lsm.WALRecoveryStrict, &logBuf)
			require.ErrorIs(t, err, lsm.ErrCorruption, "strict mode refuses a lost page with records after it")
			require.Nil(t, db)
			require.Equal(t, d, readFile(t, img.fs, img.log), "a refused Open changes nothing")
		})
	}
}

// TestWALBitRotInLastSyncedRecord is issue 16, item 2: one flipped byte in
// the final record of a log whose records were all written with Sync made
// Open succeed without that write and without a word. The default mode may
// drop it (it looks like a torn append) but must report it; strict mode
// must refuse to open.
func TestWALBitRotInLastSyncedRecord(t *testing.T) {
	img := buildWALImage(t, 8, lsm.Sync)
	last := img.recs[len(img.recs)-1]
	for _, at := range []int{last[0] + 2, last[0] + 20, (last[0] + last[1]) / 2, last[1] - 1} {
		t.Run(fmt.Sprintf("byte=%d", at), func(t *testing.T) {
			d := bytes.Clone(img.data)
			d[at] ^= 0x04

			var logBuf bytes.Buffer
			db, err := img.open(t, d, lsm.WALRecoveryDropDamagedTail, &logBuf)
			require.NoError(t, err)
			img.checkKeys(t, db, len(img.keys)-1)
			m := db.Metrics()
			require.Equal(t, int64(last[1]-last[0]), m.WALTailBytesDropped, "the dropped record's bytes are reported")
			require.Equal(t, int64(1), m.WALTailRecordsDropped, "the dropped record is reported")
			require.Contains(t, logBuf.String(), "dropped the damaged tail", "Open warns on the logger")
			require.NoError(t, db.Close())

			db, err = img.open(t, d, lsm.WALRecoveryStrict, &logBuf)
			require.ErrorIs(t, err, lsm.ErrCorruption, "strict mode refuses a complete record that fails its checksum")
			require.Nil(t, db)
			require.Equal(t, d, readFile(t, img.fs, img.log), "a refused Open changes nothing")
		})
	}
}

// TestWALTornTail: a last record cut short by the end of the file, or
// zeros, is what a crash leaves of an append in flight. Both modes drop
// it and report it; a log that ends cleanly reports nothing.
func TestWALTornTail(t *testing.T) {
	img := buildWALImage(t, 8, lsm.Sync)
	last := img.recs[len(img.recs)-1]
	cut := img.data[:last[0]+100]
	zeros := append(bytes.Clone(img.data[:last[0]]), make([]byte, 500)...)
	for _, mode := range []lsm.WALRecoveryMode{lsm.WALRecoveryDropDamagedTail, lsm.WALRecoveryStrict} {
		t.Run(mode.String(), func(t *testing.T) {
			var logBuf bytes.Buffer
			db, err := img.open(t, img.data, mode, &logBuf)
			require.NoError(t, err)
			img.checkKeys(t, db, len(img.keys))
			m := db.Metrics()
			require.Zero(t, m.WALTailBytesDropped)
			require.Zero(t, m.WALTailRecordsDropped)
			require.Empty(t, logBuf.String())
			require.NoError(t, db.Close())

			for _, d := range [][]byte{cut, zeros} {
				db, err := img.open(t, d, mode, &logBuf)
				require.NoError(t, err)
				img.checkKeys(t, db, len(img.keys)-1)
				m := db.Metrics()
				require.Equal(t, int64(len(d)-last[0]), m.WALTailBytesDropped)
				require.Equal(t, int64(1), m.WALTailRecordsDropped)
				require.Contains(t, logBuf.String(), "dropped the damaged tail")
				require.NoError(t, db.Close())
			}
		})
	}
}

// TestWALCorruptionBeforeIntactRecord: damage that is not a lost page, with
// an intact record after it, is corruption in every mode.
func TestWALCorruptionBeforeIntactRecord(t *testing.T) {
	img := buildWALImage(t, 8, lsm.Sync)
	d := bytes.Clone(img.data)
	d[img.recs[3][0]+30] ^= 0x01
	for _, mode := range []lsm.WALRecoveryMode{lsm.WALRecoveryDropDamagedTail, lsm.WALRecoveryStrict} {
		var logBuf bytes.Buffer
		_, err := img.open(t, d, mode, &logBuf)
		require.ErrorIs(t, err, lsm.ErrCorruption, "mode %s", mode)
	}
}

func TestWALRecoveryModeValidated(t *testing.T) {
	_, err := lsm.Open("db", &lsm.Options{FS: vfs.NewMem(), WALRecovery: lsm.WALRecoveryStrict + 1})
	require.ErrorContains(t, err, "WALRecovery")
}
