package lsm

import (
	"fmt"
	"strconv"
	"strings"
)

// The files of a DB directory:
//
//	CURRENT          name of the live manifest, replaced by rename
//	LOCK             held while the DB is open
//	MANIFEST-NNNNNN  version edits (record log)
//	NNNNNN.log       write-ahead log (record log of batches)
//	NNNNNN.sst       table
//	NNNNNN.tmp       a file being written; removed at open
//
// File numbers come from one counter, so a newer file has a larger number.
type fileType int

const (
	fileTypeUnknown fileType = iota
	fileTypeCurrent
	fileTypeLock
	fileTypeManifest
	fileTypeLog
	fileTypeTable
	fileTypeTemp
)

func tableFileName(n uint64) string    { return fmt.Sprintf("%06d.sst", n) }
func logFileName(n uint64) string      { return fmt.Sprintf("%06d.log", n) }
func manifestFileName(n uint64) string { return fmt.Sprintf("MANIFEST-%06d", n) }
func tempFileName(n uint64) string     { return fmt.Sprintf("%06d.tmp", n) }

const (
	currentFileName = "CURRENT"
	lockFileName    = "LOCK"
)

func parseFileName(name string) (fileType, uint64) {
	switch name {
	case currentFileName:
		return fileTypeCurrent, 0
	case lockFileName:
		return fileTypeLock, 0
	}
	if rest, ok := strings.CutPrefix(name, "MANIFEST-"); ok {
		if n, err := strconv.ParseUint(rest, 10, 64); err == nil {
			return fileTypeManifest, n
		}
		return fileTypeUnknown, 0
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return fileTypeUnknown, 0
	}
	n, err := strconv.ParseUint(name[:dot], 10, 64)
	if err != nil {
		return fileTypeUnknown, 0
	}
	switch name[dot+1:] {
	case "log":
		return fileTypeLog, n
	case "sst":
		return fileTypeTable, n
	case "tmp":
		return fileTypeTemp, n
	}
	return fileTypeUnknown, 0
}
