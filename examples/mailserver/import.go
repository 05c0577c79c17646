package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/examples/mailserver/internal/mailimport"
	"github.com/mailbricks/mailbricks/mailbox"
)

// importCommand runs `import -user U [-folder F] PATH`: it stores the
// messages of an mbox file or a Maildir (detected) in the user's mailbox.
//
// Each message is appended with an AppendOptions.Key made of its folder, a
// hash of its bytes and its occurrence number among identical messages of
// the same folder, so a rerun (or a run resumed after a crash) stores
// nothing twice, while a message that really is in the mbox twice is kept
// twice. Maildir flags (":2,FRS") and the mbox Status/X-Status fields become
// IMAP flags; a Maildir++ subfolder ".A.B" becomes folder "A/B". A message
// that does not parse is stored as it is (and counted); a message over the
// size limit is counted and skipped; nothing in the input stops the import.
//
// With embedded stores the data directory is locked by a running server:
// stop it first, or import into a server on PostgreSQL (-pg-url), which
// runs beside it.
func importCommand(ctx context.Context, cfg *config, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "the user whose mailbox receives the messages (required)")
	folder := fs.String("folder", "INBOX", "the folder for the mbox, or for the Maildir's top level")
	parallel := fs.Int("parallel", 4, "messages appended at once")
	every := fs.Duration("progress", 2*time.Second, "interval of the progress lines when the output is not a terminal")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailserver [flags] import -user NAME [-folder F] [-parallel N] [-progress 2s] MBOX-FILE|MAILDIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *user == "" || *parallel < 1 || *parallel > 64 || *every <= 0 {
		if err == nil {
			fs.Usage()
		}
		return errUsage
	}
	path := fs.Arg(0)
	name, err := normalizeName(*user)
	if err != nil {
		return err
	}
	if err := mailbox.ValidateFolderName(*folder); err != nil {
		return fmt.Errorf("-folder: %w", err)
	}
	format, err := mailimport.Detect(path)
	if err != nil {
		return err
	}

	log, err := newLogger(&config{LogLevel: "warn", LogFormat: cfg.LogFormat}, stderr)
	if err != nil {
		return err
	}
	// Bulk mode: no sync per message; Close below syncs all, and a rerun
	// after a crash stores what was lost (keys make it idempotent).
	bulk := *cfg
	bulk.bulk = true
	b, err := openBlocksForCommand(ctx, &bulk, log)
	if err != nil {
		return err
	}
	defer func() {
		// In bulk mode Close is what makes the import durable: its failure
		// fails the command (run it again).
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close the stores (the import may be incomplete; run it again): %w", cerr))
		}
	}()
	if _, err := b.Users.Hash(ctx, name); errors.Is(err, errNoUser) {
		return fmt.Errorf("no user %s (add it with `mailserver user add %s`)", name, name)
	} else if err != nil {
		return err
	}
	im := &importer{
		mb: b.Mailbox, user: mailbricks.UserID(name), folder: mailbox.CanonicalFolderName(*folder),
		seen: map[string]int{}, created: map[string]bool{}, before: map[string]int64{}, log: log,
	}
	im.prog.start = time.Now()
	im.prog.format = format

	// The source: a channel of messages in input order, each with its key.
	src := make(chan *importItem, 64)
	readErr := make(chan error, 1)
	switch format {
	case mailimport.Mbox:
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			im.prog.totalBytes = fi.Size()
		}
		go func() { readErr <- im.readMbox(ctx, f, src) }()
	case mailimport.Maildir:
		files, err := mailimport.ScanMaildir(path)
		if err != nil {
			return err
		}
		im.prog.totalMsgs = int64(len(files))
		for _, f := range files {
			im.prog.totalBytes += f.Size
		}
		go func() { readErr <- im.readMaildir(ctx, files, src) }()
	}

	stopProgress := im.prog.run(stderr, *every)
	var wg sync.WaitGroup
	for range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range src {
				im.store(ctx, it)
			}
		}()
	}
	wg.Wait()
	rerr := <-readErr
	stopProgress()
	im.countNew(context.WithoutCancel(ctx))

	p := &im.prog
	el := time.Since(p.start)
	fmt.Fprintf(stdout, "imported %s %s into %s: %d messages read, %d stored, %d already there, %d malformed (stored as they are), %d too large (skipped), %d failed; %s in %s (%.0f msg/s)\n",
		format, path, name, p.msgs.Load(), p.stored.Load(), p.existing.Load(), p.malformed.Load(), p.tooLarge.Load(), p.failed.Load(),
		humanBytes(p.bytes.Load()), el.Round(time.Millisecond), float64(p.msgs.Load())/max(el.Seconds(), 1e-9))
	if rerr != nil {
		return fmt.Errorf("reading %s: %w", path, rerr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: rerun the same command to finish (nothing is stored twice): %w", err)
	}
	if n := p.failed.Load(); n > 0 {
		return fmt.Errorf("%d messages failed (see above); rerun to retry them", n)
	}
	return nil
}

type importItem struct {
	msg    *mailimport.Message
	folder string
	key    string
	size   int64 // input bytes the item accounts for
	err    error // ErrTooLarge from the reader
}

type importer struct {
	mb     *mailbox.Store
	user   mailbricks.UserID
	folder string
	log    *slog.Logger

	mu      sync.Mutex
	seen    map[string]int // occurrences of a folder+hash so far
	created map[string]bool
	before  map[string]int64 // folder totals before the first append

	prog progress
}

// key is the idempotency key of a message: the same bytes in the same
// folder at the same occurrence get the same key on every run.
func (im *importer) key(folder string, data []byte) string {
	h := sha256.New()
	h.Write([]byte(folder))
	h.Write([]byte{0})
	h.Write(data)
	sum := hex.EncodeToString(h.Sum(nil))
	im.seen[folder+"\x00"+sum]++
	return fmt.Sprintf("import/%s/%d", sum, im.seen[folder+"\x00"+sum])
}

func (im *importer) readMbox(ctx context.Context, r io.Reader, out chan<- *importItem) error {
	defer close(out)
	mr := mailimport.NewMboxReader(r, mailimport.DefaultMaxSize)
	last := int64(0)
	for ctx.Err() == nil {
		m, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		it := &importItem{folder: im.folder, size: mr.Offset() - last}
		last = mr.Offset()
		switch {
		case errors.Is(err, mailimport.ErrTooLarge):
			it.err = err
		case err != nil:
			return err
		default:
			it.msg = m
			it.key = im.key(it.folder, m.Data)
		}
		select {
		case out <- it:
		case <-ctx.Done():
		}
	}
	return nil
}

func (im *importer) readMaildir(ctx context.Context, files []mailimport.MaildirFile, out chan<- *importItem) error {
	defer close(out)
	for _, f := range files {
		if ctx.Err() != nil {
			return nil
		}
		folder := im.folder
		if f.Folder != "" {
			folder = mailbox.CanonicalFolderName(f.Folder)
		}
		it := &importItem{folder: folder, size: f.Size}
		m, err := mailimport.ReadMaildirFile(f, mailimport.DefaultMaxSize)
		switch {
		case errors.Is(err, mailimport.ErrTooLarge):
			it.err = err
		case errors.Is(err, os.ErrNotExist):
			continue // moved by a mail client meanwhile
		case err != nil:
			return err
		default:
			it.msg = m
			it.key = im.key(folder, m.Data)
		}
		select {
		case out <- it:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// ensureFolder creates a Maildir subfolder on first use.
func (im *importer) ensureFolder(ctx context.Context, folder string) error {
	im.mu.Lock()
	done := im.created[folder]
	im.mu.Unlock()
	if done {
		return nil
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.created[folder] {
		return nil
	}
	f, err := im.mb.Folder(ctx, im.user, folder)
	if errors.Is(err, mailbox.ErrNoFolder) {
		if _, err := im.mb.CreateFolder(ctx, im.user, folder); err != nil && !errors.Is(err, mailbox.ErrFolderExists) {
			return err
		}
		f.Total = 0
	} else if err != nil {
		return err
	}
	im.before[folder] = f.Total
	im.created[folder] = true
	return nil
}

// store appends one message, retrying temporary failures.
func (im *importer) store(ctx context.Context, it *importItem) {
	p := &im.prog
	defer p.bytes.Add(it.size)
	defer p.msgs.Add(1)
	if it.err != nil {
		p.tooLarge.Add(1)
		im.log.Warn("import: skipped", "err", it.err)
		return
	}
	if err := mailbox.ValidateFolderName(it.folder); err != nil {
		p.failed.Add(1)
		im.log.Error("import: folder", "folder", it.folder, "source", it.msg.Source, "err", err)
		return
	}
	flags, err := mailbox.CanonicalFlags(it.msg.Flags)
	if err != nil {
		flags = nil
	}
	var m mailbox.Message
	for attempt := 0; ; attempt++ {
		if err = im.ensureFolder(ctx, it.folder); err == nil {
			m, err = im.mb.Append(ctx, im.user, it.folder, bytes.NewReader(it.msg.Data),
				&mailbox.AppendOptions{Flags: flags, InternalDate: it.msg.Date, Key: it.key})
		}
		if err == nil || attempt >= 5 || ctx.Err() != nil || !(mailbricks.IsTemporary(err) || errors.Is(err, context.DeadlineExceeded)) {
			break
		}
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
	switch {
	case errors.Is(err, mailbox.ErrTooLarge):
		p.tooLarge.Add(1)
		im.log.Warn("import: too large", "source", it.msg.Source)
		return
	case err != nil:
		p.failed.Add(1)
		im.log.Error("import: append", "source", it.msg.Source, "err", err)
		return
	}
	p.appended.Add(1)
	if m.ParseError != "" || len(it.msg.Data) == 0 {
		p.malformed.Add(1)
	}
}

// countNew sets the stored and existing counts from the folders' totals
// before and after. (Append answers a repeated key with the message first
// stored and does not say which case it was; the totals are exact unless
// mail is delivered to the same folders during the import.)
func (im *importer) countNew(ctx context.Context) {
	var added int64
	for folder, before := range im.before {
		f, err := im.mb.Folder(ctx, im.user, folder)
		if err != nil {
			continue
		}
		added += f.Total - before
	}
	added = max(min(added, im.prog.appended.Load()), 0)
	im.prog.stored.Store(added)
	im.prog.existing.Store(im.prog.appended.Load() - added)
}

// progress counts an import's work and shows it: a bar redrawn in place on
// a terminal, a line every interval otherwise.
type progress struct {
	start                                                                time.Time
	format                                                               mailimport.Format
	totalMsgs                                                            int64 // 0 when unknown (mbox)
	totalBytes                                                           int64
	msgs, bytes, appended, stored, existing, malformed, tooLarge, failed atomic.Int64
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// run shows progress on w until the returned function is called.
func (p *progress) run(w io.Writer, every time.Duration) func() {
	tty := isTerminal(w)
	if tty {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintf(w, "\r%s\n", p.bar(80))
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(w, "\r%s", p.bar(80))
				} else {
					fmt.Fprintln(w, p.line())
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// rates returns messages/s, the done fraction (by bytes) and the ETA.
func (p *progress) rates() (float64, float64, time.Duration) {
	el := time.Since(p.start).Seconds()
	msgs, b := float64(p.msgs.Load()), float64(p.bytes.Load())
	rate := msgs / max(el, 1e-9)
	frac := 0.0
	if p.totalBytes > 0 {
		frac = min(b/float64(p.totalBytes), 1)
	}
	eta := time.Duration(-1)
	if frac > 0 {
		eta = time.Duration(el * (1 - frac) / frac * float64(time.Second))
	}
	return rate, frac, eta
}

// line is the plain progress line.
func (p *progress) line() string {
	rate, frac, eta := p.rates()
	total := ""
	if p.totalMsgs > 0 {
		total = fmt.Sprintf(" of %d", p.totalMsgs)
	}
	return fmt.Sprintf("import: %d%s messages, %s of %s (%.0f%%), %.0f msg/s, ETA %s",
		p.msgs.Load(), total, humanBytes(p.bytes.Load()), humanBytes(p.totalBytes), frac*100, rate, fmtETA(eta))
}

// bar is the terminal progress bar, width columns wide at most.
func (p *progress) bar(width int) string {
	rate, frac, eta := p.rates()
	text := fmt.Sprintf(" %3.0f%% %d msgs %s/%s %.0f msg/s ETA %s", frac*100, p.msgs.Load(),
		humanBytes(p.bytes.Load()), humanBytes(p.totalBytes), rate, fmtETA(eta))
	n := max(width-len(text)-2, 10)
	fill := int(frac * float64(n))
	return "[" + strings.Repeat("=", fill) + strings.Repeat(" ", n-fill) + "]" + text
}

func fmtETA(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return d.Round(time.Second).String()
}

func humanBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// openBlocksForCommand opens the blocks for a command. With embedded stores
// a running server holds the data directory's locks, and openBlocks then
// fails: say what is the likely cause.
func openBlocksForCommand(ctx context.Context, cfg *config, log *slog.Logger) (*blocks, error) {
	b, err := openBlocks(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("cannot open the stores in %s: is a server running on it? Stop it first (or import into a server on -pg-url): %w", cfg.Data, err)
	}
	return b, nil
}
