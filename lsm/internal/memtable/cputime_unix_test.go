//go:build unix

package memtable

import "syscall"

// cpuTime returns the CPU time the process has used, in nanoseconds, or 0
// where it cannot be read. Benchmarks report it beside wall time because
// the machines they run on are shared: the wall time of a single-threaded
// benchmark grows with the load, its CPU time much less.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
