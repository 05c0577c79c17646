//go:build unix && !aix && !solaris && !illumos

package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// lockFile locks name with flock(2). Flock locks belong to the open file
// description, so a second lockFile of the same file conflicts even in the
// same process, and the lock vanishes when the process dies.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		f.Close()
		return nil, err
	}
	if ferr != nil {
		f.Close()
		if errors.Is(ferr, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("vfs: lock %s: %w", name, ErrLocked)
		}
		return nil, fmt.Errorf("vfs: lock %s: %w", name, ferr)
	}
	return &flockCloser{f: f}, nil
}

// flockCloser releases a flock by closing its file.
type flockCloser struct {
	once sync.Once
	f    *os.File
	err  error
}

func (l *flockCloser) Close() error {
	l.once.Do(func() { l.err = l.f.Close() })
	return l.err
}
