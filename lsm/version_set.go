package lsm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mailbricks/mailbricks/lsm/internal/manifest"
	"github.com/mailbricks/mailbricks/lsm/internal/record"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// maxManifestSize is the size past which the manifest is rewritten as one
// snapshot edit in a new file.
const maxManifestSize = 8 << 20

// versionSet owns the manifest: the log of version edits that says which
// tables make up the DB. An edit is durable (appended and synced) before the
// version it produces is installed, and a new manifest becomes live only by
// the atomic rename of CURRENT followed by a directory sync.
type versionSet struct {
	fs          vfs.FS
	dir         string
	files       *fileRefs
	mergerName  string
	current     *version
	nextFileNum uint64
	logNum      uint64 // WALs numbered below it are obsolete
	manifestNum uint64
	manifest    *record.Writer
}

// logAndApply makes e durable in the manifest, then installs the version it
// produces. installed, if non-nil, runs after the edit is durable and before
// the read state is republished. d.mu must be held.
func (d *DB) logAndApply(e *manifest.VersionEdit, installed func()) error {
	vs := &d.vs
	if e.HasLogNumber && e.LogNumber < vs.logNum {
		e.LogNumber = vs.logNum
	}
	e.HasNextFileNumber, e.NextFileNumber = true, vs.nextFileNum
	e.HasLastSeq, e.LastSeq = true, d.assignedSeq.Load()
	levels := vs.current.apply(e)
	if err := checkOrdering(&levels); err != nil {
		return fmt.Errorf("lsm: version edit: %w", err)
	}
	logNum := vs.logNum
	if e.HasLogNumber {
		logNum = e.LogNumber
	}
	if vs.manifest.Size() > maxManifestSize {
		num := vs.nextFileNum
		vs.nextFileNum++
		if err := vs.createManifest(num, &levels, logNum, e.LastSeq); err != nil {
			return err
		}
	} else {
		end, err := vs.manifest.Append(e.Encode())
		if err == nil {
			err = vs.manifest.SyncTo(end)
		}
		if err != nil {
			return fmt.Errorf("lsm: write manifest: %w", err)
		}
	}
	vs.logNum = logNum
	d.removeFiles(d.obsolete.edited())
	old := vs.current
	vs.current = vs.files.newVersion(levels)
	if installed != nil {
		installed()
	}
	d.updateReadState()
	old.unref()
	if d.obsolete.pending() {
		// The edit just written may be dropped as a torn tail if it stays
		// the newest record; a small edit after it pins it, so that the
		// files it made obsolete can go now rather than at the next edit.
		confirm := &manifest.VersionEdit{
			HasNextFileNumber: true, NextFileNumber: vs.nextFileNum,
			HasLastSeq: true, LastSeq: d.assignedSeq.Load(),
		}
		end, err := vs.manifest.Append(confirm.Encode())
		if err == nil {
			err = vs.manifest.SyncTo(end)
		}
		if err != nil {
			// The edit itself is durable and installed, but the manifest
			// can take no more edits: fail like any manifest write.
			return fmt.Errorf("lsm: write manifest: %w", err)
		}
		d.removeFiles(d.obsolete.edited())
	}
	return nil
}

// snapshotEdit is an edit that recreates levels from nothing.
func (vs *versionSet) snapshotEdit(levels *[numLevels][]*fileMeta, logNum, lastSeq uint64) *manifest.VersionEdit {
	e := &manifest.VersionEdit{
		MergerName:        vs.mergerName,
		HasLogNumber:      true,
		LogNumber:         logNum,
		HasNextFileNumber: true,
		NextFileNumber:    vs.nextFileNum,
		HasLastSeq:        true,
		LastSeq:           lastSeq,
	}
	for l, files := range levels {
		for _, m := range files {
			e.NewFiles = append(e.NewFiles, manifest.NewFileEntry{Level: l, Meta: m})
		}
	}
	return e
}

// createManifest writes a new manifest holding levels, points CURRENT at it
// and retires the old one.
func (vs *versionSet) createManifest(num uint64, levels *[numLevels][]*fileMeta, logNum, lastSeq uint64) error {
	name := vs.fs.PathJoin(vs.dir, manifestFileName(num))
	f, err := vs.fs.Create(name)
	if err != nil {
		return fmt.Errorf("lsm: create manifest: %w", err)
	}
	w := record.NewWriter(f)
	end, err := w.Append(vs.snapshotEdit(levels, logNum, lastSeq).Encode())
	if err == nil {
		err = w.SyncTo(end)
	}
	if err == nil {
		err = syncDir(vs.fs, vs.dir)
	}
	if err == nil {
		err = vs.setCurrent(num)
	}
	if err != nil {
		w.Close()
		vs.fs.Remove(name)
		return fmt.Errorf("lsm: write manifest: %w", err)
	}
	old, oldNum := vs.manifest, vs.manifestNum
	vs.manifest, vs.manifestNum = w, num
	if old != nil {
		old.Close()
		vs.fs.Remove(vs.fs.PathJoin(vs.dir, manifestFileName(oldNum)))
	}
	return nil
}

// setCurrent atomically points CURRENT at manifest num.
func (vs *versionSet) setCurrent(num uint64) error {
	tmp := vs.fs.PathJoin(vs.dir, tempFileName(num))
	f, err := vs.fs.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(manifestFileName(num) + "\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = vs.fs.Rename(tmp, vs.fs.PathJoin(vs.dir, currentFileName))
	}
	if err == nil {
		err = syncDir(vs.fs, vs.dir)
	}
	if err != nil {
		vs.fs.Remove(tmp)
	}
	return err
}

func (vs *versionSet) close() error {
	if vs.manifest == nil {
		return nil
	}
	err := vs.manifest.Close()
	vs.manifest = nil
	return err
}

// parseCurrent returns the manifest number that CURRENT names.
func parseCurrent(data []byte) (uint64, error) {
	s, ok := strings.CutSuffix(string(data), "\n")
	if !ok {
		return 0, fmt.Errorf("%w: CURRENT %q is not a manifest name", ErrCorruption, data)
	}
	rest, ok := strings.CutPrefix(s, "MANIFEST-")
	if !ok {
		return 0, fmt.Errorf("%w: CURRENT %q is not a manifest name", ErrCorruption, data)
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: CURRENT %q is not a manifest name", ErrCorruption, data)
	}
	return n, nil
}

func syncDir(fs vfs.FS, dir string) error {
	f, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("lsm: open directory: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("lsm: sync directory: %w", err)
	}
	return nil
}
