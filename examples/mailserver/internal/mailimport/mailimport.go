// Package mailimport reads mail from the two common on-disk formats for bulk
// import: mbox files (mboxrd quoting, which also reads mboxo and plain
// mboxcl files) and Maildir directories (with Maildir++ subfolders and
// their flags).
//
// Readers never fail on the content of a message: whatever bytes lie
// between two separators are a message, malformed or not, for the caller
// to store as it is. Only I/O errors and messages over the size limit are
// errors, and after a size error the reader goes on with the next message.
package mailimport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Sentinel errors.
var (
	// ErrTooLarge is returned for a message over the reader's MaxSize;
	// the reader skips it and can go on.
	ErrTooLarge = errors.New("mailimport: message too large")
	// ErrNotMail is returned by Detect for a path that is neither a file
	// nor a Maildir.
	ErrNotMail = errors.New("mailimport: neither an mbox file nor a Maildir")
)

// DefaultMaxSize is the default largest message a reader returns: 64 MiB.
const DefaultMaxSize = 64 << 20

// Message is one message read from an mbox or a Maildir.
type Message struct {
	// Data is the message, byte for byte as stored (mbox: with the
	// ">From " quoting undone and without the separator line).
	Data []byte
	// Folder is the folder the message belongs in: "" for the mbox or the
	// Maildir's top level (the inbox), else the Maildir++ subfolder name
	// with "/" as the separator ("Archive/2024").
	Folder string
	// Flags are the message's IMAP flags: from the Maildir info
	// (":2,FRS") or the mbox Status and X-Status fields.
	Flags []string
	// Date is the delivery time if the store records one (the mbox "From "
	// line, the Maildir file's modification time), else zero.
	Date time.Time
	// Source names where the message was read: "mbox:<byte offset>" or
	// the Maildir file's path.
	Source string
}

// Format is a mail store format.
type Format int

// The formats Detect recognizes.
const (
	Mbox Format = iota + 1
	Maildir
)

func (f Format) String() string {
	switch f {
	case Mbox:
		return "mbox"
	case Maildir:
		return "Maildir"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Detect says whether path is an mbox file or a Maildir (a directory with
// a cur or new subdirectory, or with Maildir++ subfolders).
func Detect(path string) (Format, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() {
		return Mbox, nil
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%w: %s", ErrNotMail, path)
	}
	if isMaildir(path) {
		return Maildir, nil
	}
	ents, _ := os.ReadDir(path)
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") && isMaildir(filepath.Join(path, e.Name())) {
			return Maildir, nil
		}
	}
	return 0, fmt.Errorf("%w: %s (a directory without cur/ or new/)", ErrNotMail, path)
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// MboxReader reads the messages of an mbox file one at a time.
type MboxReader struct {
	br      *bufio.Reader
	maxSize int
	off     int64 // bytes consumed
	pending []byte
	started bool
	eof     bool
}

// NewMboxReader returns a reader of the mbox in r. maxSize bounds a message
// (ErrTooLarge beyond it); 0 means DefaultMaxSize.
func NewMboxReader(r io.Reader, maxSize int) *MboxReader {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &MboxReader{br: bufio.NewReaderSize(r, 64<<10), maxSize: maxSize}
}

// Offset is the number of bytes of the input read so far.
func (m *MboxReader) Offset() int64 { return m.off }

// readLine returns the next line with its "\n" (the last one may lack it).
func (m *MboxReader) readLine() ([]byte, error) {
	if m.pending != nil {
		l := m.pending
		m.pending = nil
		m.off += int64(len(l))
		return l, nil
	}
	line, err := m.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A long line: collect it whole.
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = m.br.ReadSlice('\n')
			buf = append(buf, line...)
			if len(buf) > m.maxSize+1 {
				// Keep memory bounded: drop the rest of the line.
				for errors.Is(err, bufio.ErrBufferFull) {
					line, err = m.br.ReadSlice('\n')
					m.off += int64(len(line))
				}
				break
			}
		}
		m.off += int64(len(buf))
		return buf, err
	}
	m.off += int64(len(line))
	if len(line) > 0 {
		line = append([]byte(nil), line...)
	}
	return line, err
}

// isSeparator reports whether a line starts a message: "From " at the
// start of a line. (mboxrd quotes every such line inside a message.)
func isSeparator(line []byte) bool { return bytes.HasPrefix(line, []byte("From ")) }

// Next returns the next message, or io.EOF after the last. A message over
// the size limit returns ErrTooLarge (with Source set) and is skipped.
func (m *MboxReader) Next() (*Message, error) {
	if m.eof {
		return nil, io.EOF
	}
	var sep []byte
	start := m.off
	// Find the first separator; text before it (not an mbox, or garbage)
	// is a message of its own if it is not blank.
	line, err := m.readLine()
	if len(line) == 0 && err != nil {
		m.eof = true
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	if m.started || isSeparator(line) {
		sep = line
		start = m.off
	} else {
		m.pending = line
		m.off -= int64(len(line))
	}
	m.started = true
	var buf bytes.Buffer
	tooLarge := false
	var rerr error
	for {
		line, err := m.readLine()
		if len(line) > 0 {
			if isSeparator(line) {
				m.pending = line
				m.off -= int64(len(line))
				break
			}
			if !tooLarge {
				buf.Write(unquote(line))
				if buf.Len() > m.maxSize+2 {
					tooLarge = true
					buf = bytes.Buffer{}
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				rerr = err
			}
			m.eof = true
			break
		}
	}
	src := fmt.Sprintf("mbox:%d", start)
	if tooLarge {
		return &Message{Source: src}, fmt.Errorf("%w: at byte %d", ErrTooLarge, start)
	}
	data := trimSeparatorBlank(buf.Bytes())
	if rerr != nil {
		return nil, rerr
	}
	if sep == nil && len(bytes.TrimSpace(data)) == 0 {
		// Only blank text before the first separator.
		return m.Next()
	}
	if len(data) > m.maxSize {
		return &Message{Source: src}, fmt.Errorf("%w: at byte %d", ErrTooLarge, start)
	}
	msg := &Message{Data: data, Source: src, Date: separatorDate(sep)}
	msg.Flags = mboxFlags(data)
	return msg, nil
}

// unquote undoes mboxrd quoting: ">From ", ">>From ", … lose one ">".
func unquote(line []byte) []byte {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	if i > 0 && bytes.HasPrefix(line[i:], []byte("From ")) {
		return line[1:]
	}
	return line
}

// trimSeparatorBlank removes the blank line that ends each message before
// the next separator ("\n" or "\r\n").
func trimSeparatorBlank(b []byte) []byte {
	switch {
	case len(b) <= 2 && len(bytes.TrimRight(b, "\r\n")) == 0:
		return nil
	case bytes.HasSuffix(b, []byte("\r\n\r\n")):
		return b[:len(b)-2]
	case bytes.HasSuffix(b, []byte("\n\n")):
		return b[:len(b)-1]
	}
	return b
}

// separatorDate parses the date of a "From sender date" line (asctime
// format, as written by MTAs), or returns zero.
func separatorDate(sep []byte) time.Time {
	f := strings.Fields(strings.TrimSpace(string(sep)))
	if len(f) < 3 {
		return time.Time{}
	}
	rest := strings.Join(f[2:], " ")
	for _, layout := range []string{time.ANSIC, "Mon Jan _2 15:04:05 2006 -0700", "Mon Jan _2 15:04:05 -0700 2006", time.UnixDate, time.RubyDate} {
		if t, err := time.Parse(layout, rest); err == nil {
			return t
		}
	}
	return time.Time{}
}

// mboxFlags reads the Status and X-Status fields mail readers (mutt, pine,
// Thunderbird's "Status") leave in an mbox message's header.
func mboxFlags(data []byte) []string {
	var flags []string
	add := func(f string) {
		for _, x := range flags {
			if x == f {
				return
			}
		}
		flags = append(flags, f)
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break // end of header
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v := string(bytes.TrimSpace(value))
		switch strings.ToLower(string(name)) {
		case "status":
			if strings.Contains(v, "R") {
				add(`\Seen`)
			}
		case "x-status":
			for _, c := range v {
				switch c {
				case 'A':
					add(`\Answered`)
				case 'F':
					add(`\Flagged`)
				case 'D':
					add(`\Deleted`)
				case 'T':
					add(`\Draft`)
				}
			}
		}
	}
	return flags
}

// MboxWriter writes messages as an mboxrd file (the inverse of MboxReader,
// for tests and exports).
type MboxWriter struct {
	w *bufio.Writer
}

// NewMboxWriter returns a writer to w. Call Flush at the end.
func NewMboxWriter(w io.Writer) *MboxWriter { return &MboxWriter{w: bufio.NewWriter(w)} }

// Write appends one message with a "From sender date" separator, quoting
// its ">*From " lines. A message not ending in a newline gets one.
func (m *MboxWriter) Write(sender string, date time.Time, data []byte) error {
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	if date.IsZero() {
		date = time.Unix(0, 0)
	}
	fmt.Fprintf(m.w, "From %s %s\n", sender, date.UTC().Format(time.ANSIC))
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i+1], data[i+1:]
		}
		j := 0
		for j < len(line) && line[j] == '>' {
			j++
		}
		if bytes.HasPrefix(line[j:], []byte("From ")) {
			m.w.WriteByte('>')
		}
		m.w.Write(line)
		if i < 0 {
			m.w.WriteByte('\n')
		}
	}
	_, err := m.w.WriteString("\n")
	return err
}

// Flush writes buffered data.
func (m *MboxWriter) Flush() error { return m.w.Flush() }

// MaildirFile is one message file of a Maildir, found by ScanMaildir.
type MaildirFile struct {
	Path   string
	Folder string
	Size   int64
	Flags  []string
	Date   time.Time
}

// ScanMaildir lists the messages of the Maildir at root (cur/ and new/ of
// root and of each Maildir++ subfolder ".A.B", which becomes folder
// "A/B"), in a stable order: by folder, then by file name (which starts
// with the delivery time).
func ScanMaildir(root string) ([]MaildirFile, error) {
	var dirs []struct{ path, folder string }
	if isMaildir(root) {
		dirs = append(dirs, struct{ path, folder string }{root, ""})
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || !strings.HasPrefix(n, ".") || n == "." || n == ".." {
			continue
		}
		p := filepath.Join(root, n)
		if isMaildir(p) {
			dirs = append(dirs, struct{ path, folder string }{p, strings.ReplaceAll(strings.TrimPrefix(n, "."), ".", "/")})
		}
	}
	var out []MaildirFile
	for _, d := range dirs {
		for _, sub := range []string{"cur", "new"} {
			ents, err := os.ReadDir(filepath.Join(d.path, sub))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, e := range ents {
				if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
					continue
				}
				fi, err := e.Info()
				if err != nil {
					continue // vanished meanwhile
				}
				f := MaildirFile{Path: filepath.Join(d.path, sub, e.Name()), Folder: d.folder, Size: fi.Size(), Date: fi.ModTime()}
				if sub == "cur" {
					f.Flags = MaildirFlags(e.Name())
				}
				out = append(out, f)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Folder != out[j].Folder {
			return out[i].Folder < out[j].Folder
		}
		return filepath.Base(out[i].Path) < filepath.Base(out[j].Path)
	})
	return out, nil
}

// MaildirFlags maps the flags of a Maildir file name ("…:2,FRS") to IMAP
// flags: D \Draft, F \Flagged, P $Forwarded, R \Answered, S \Seen,
// T \Deleted. Lower-case letters (Dovecot's keywords) are not mapped.
func MaildirFlags(name string) []string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		i = strings.LastIndex(name, "!2,") // the Windows-safe separator
	}
	if i < 0 {
		return nil
	}
	var flags []string
	seen := map[rune]bool{}
	for _, c := range name[i+3:] {
		if seen[c] {
			continue
		}
		seen[c] = true
		switch c {
		case 'D':
			flags = append(flags, `\Draft`)
		case 'F':
			flags = append(flags, `\Flagged`)
		case 'P':
			flags = append(flags, `$Forwarded`)
		case 'R':
			flags = append(flags, `\Answered`)
		case 'S':
			flags = append(flags, `\Seen`)
		case 'T':
			flags = append(flags, `\Deleted`)
		}
	}
	return flags
}

// ReadMaildirFile reads one Maildir message of at most maxSize bytes (0:
// DefaultMaxSize).
func ReadMaildirFile(f MaildirFile, maxSize int) (*Message, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if f.Size > int64(maxSize) {
		return &Message{Source: f.Path, Folder: f.Folder}, fmt.Errorf("%w: %s", ErrTooLarge, f.Path)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, int64(maxSize)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSize {
		return &Message{Source: f.Path, Folder: f.Folder}, fmt.Errorf("%w: %s", ErrTooLarge, f.Path)
	}
	return &Message{Data: data, Folder: f.Folder, Flags: f.Flags, Date: f.Date, Source: f.Path}, nil
}
