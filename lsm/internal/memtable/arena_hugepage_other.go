//go:build unix && !linux && !race

package memtable

// adviseHugePages does nothing where huge-page advice is not known to exist.
func adviseHugePages([]byte) {}
