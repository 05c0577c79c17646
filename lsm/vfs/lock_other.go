//go:build !unix || aix || solaris || illumos

package vfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// On these platforms the standard library offers no advisory file lock, so
// locks are kept in a process-wide table keyed by absolute path. They exclude
// other Lock calls of this process (so a second Open of one database in the
// same process fails) but not other processes.
var (
	processLocksMu sync.Mutex
	processLocks   = make(map[string]bool)
)

func lockFile(name string) (io.Closer, error) {
	key, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("vfs: lock %s: %w", name, err)
	}
	processLocksMu.Lock()
	defer processLocksMu.Unlock()
	if processLocks[key] {
		return nil, fmt.Errorf("vfs: lock %s: %w", name, ErrLocked)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	processLocks[key] = true
	return &processLock{key: key, f: f}, nil
}

// processLock releases an entry of processLocks.
type processLock struct {
	once sync.Once
	key  string
	f    *os.File
	err  error
}

func (l *processLock) Close() error {
	l.once.Do(func() {
		l.err = l.f.Close()
		processLocksMu.Lock()
		delete(processLocks, l.key)
		processLocksMu.Unlock()
	})
	return l.err
}
