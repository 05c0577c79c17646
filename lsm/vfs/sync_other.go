//go:build !linux

package vfs

import "os"

// datasync flushes f's data with [os.File.Sync], which on Darwin issues
// F_FULLFSYNC.
func datasync(f *os.File) error { return f.Sync() }
