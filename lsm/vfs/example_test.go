package vfs_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// writeFileExample writes data to name and syncs it. If syncDir is set, it also
// syncs the directory, which makes the new name durable.
func writeFileExample(fs vfs.FS, dir, name, data string, syncDir bool) error {
	f, err := fs.Create(fs.PathJoin(dir, name))
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(data)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !syncDir {
		return nil
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// This example writes two files, makes only one of them durable, and shows
// what survives a simulated power loss.
func ExampleNewCrashable() {
	fs := vfs.NewCrashable()
	if err := fs.MkdirAll("db", 0o755); err != nil {
		log.Fatal(err)
	}
	// Durable: data synced, then the directory entry synced.
	if err := writeFileExample(fs, "db", "MANIFEST", "manifest v1", true); err != nil {
		log.Fatal(err)
	}
	// Not durable: the data is synced but the new entry is not.
	if err := writeFileExample(fs, "db", "000002.log", "lost", false); err != nil {
		log.Fatal(err)
	}

	crashed := fs.CrashClone(vfs.CrashCloneOptions{Seed: 1})
	names, err := crashed.List("db")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after the crash:", names)
	m, err := crashed.Open("db/MANIFEST")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, err := io.ReadAll(m)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("MANIFEST: %q\n", b)
	_, err = crashed.Open("db/000002.log")
	fmt.Println("log missing:", errors.Is(err, os.ErrNotExist))

	// The original file system goes on as if nothing happened.
	names, err = fs.List("db")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("before the crash:", names)
	// Output:
	// after the crash: [MANIFEST]
	// MANIFEST: "manifest v1"
	// log missing: true
	// before the crash: [000002.log MANIFEST]
}

// This example fails the second write, as a test of an engine's error
// handling would.
func ExampleNewErrorFS() {
	fs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailNth(vfs.OpWrite, 2))
	f, err := fs.Create("wal")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	_, err1 := f.Write([]byte("a"))
	_, err2 := f.Write([]byte("b"))
	fmt.Println(err1)
	fmt.Println(err2, errors.Is(err2, vfs.ErrInjected))
	fmt.Println(fs.Counts()[vfs.OpWrite])
	// Output:
	// <nil>
	// vfs: write wal: vfs: injected error true
	// 2
}
