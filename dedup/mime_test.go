package dedup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/internal/corpus"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/stretchr/testify/require"
)

func memStore(t testing.TB) *dedup.Store {
	b, err := filededup.Open("/d", &filededup.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	s := dedup.New(b, nil)
	t.Cleanup(func() { s.Close() })
	return s
}

func roundTrip(t testing.TB, s *dedup.Store, owner string, msg []byte, opts *dedup.SplitOptions) dedup.Skeleton {
	t.Helper()
	ctx := context.Background()
	sk, err := dedup.Split(ctx, s, owner, bytes.NewReader(msg), opts)
	require.NoError(t, err)
	require.Equal(t, int64(len(msg)), sk.Size)
	rc, err := dedup.Join(ctx, s, sk.Data)
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	if !bytes.Equal(msg, got) {
		t.Fatalf("Join(Split(m)) != m for owner %s: %d bytes in, %d out", owner, len(msg), len(got))
	}
	refs, err := dedup.Refs(sk.Data)
	require.NoError(t, err)
	require.Equal(t, sk.Refs, refs)
	return sk
}

// TestSplitJoinCorpus round-trips every message of the SpamAssassin public
// corpus, with a small MinSize so that many parts become blobs.
func TestSplitJoinCorpus(t *testing.T) {
	msgs := corpus.ForTest(t)
	s := memStore(t)
	split := 0
	for i, m := range msgs {
		sk := roundTrip(t, s, fmt.Sprintf("c/%d", i), m.Raw, &dedup.SplitOptions{MinSize: 4096})
		if len(sk.Refs) > 0 {
			split++
		}
	}
	t.Logf("%d messages round-tripped byte-exact, %d with blobs", len(msgs), split)
	require.Greater(t, split, len(msgs)/10, "a good share of the corpus must have parts above 4 KiB")
}

func b64(seed uint64, n int, eol string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	r := rand.New(rand.NewPCG(seed, 1))
	var sb strings.Builder
	for sb.Len() < n {
		for range 76 {
			sb.WriteByte(alpha[r.IntN(64)])
		}
		sb.WriteString(eol)
	}
	return sb.String()
}

// generated returns messages that exercise the splitter: large base64
// attachments, nested multiparts, forwarded messages, LF line ends and
// several kinds of broken MIME.
func generated() map[string]string {
	att := b64(1, 200<<10, "\r\n")
	attLF := b64(1, 200<<10, "\n")
	hdr := "From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
	mixed := func(boundary, body string) string {
		return hdr + "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n" + body
	}
	part := func(ct, body string) string {
		return "Content-Type: " + ct + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body
	}
	simple := mixed("b1", "--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\n"+part("application/pdf", att)+"--b1--\r\n")
	return map[string]string{
		"simple": simple,
		"nested": mixed("outer", "pre\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\n"+
			b64(2, 40<<10, "\r\n")+"--inner\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--inner--\r\n--outer\r\n"+part("image/png", att)+"--outer--\r\nepi"),
		"forwarded":          mixed("f", "--f\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"+simple+"\r\n--f--\r\n"),
		"lf-only":            strings.ReplaceAll(mixed("b1", "--b1\r\n"+part("application/zip", "")), "\r\n", "\n") + attLF + "--b1--\n",
		"no-close-delimiter": mixed("b1", "--b1\r\n"+part("application/pdf", att)),
		"boundary-missing":   mixed("nowhere", "--b1\r\n"+part("application/pdf", att)+"--b1--\r\n"),
		"no-boundary-param":  hdr + "Content-Type: multipart/mixed\r\n\r\n--b1\r\n" + part("application/pdf", att) + "--b1--\r\n",
		"prefix-boundary":    mixed("b", "--b\r\n"+part("application/pdf", "--bb not a delimiter\r\n"+att)+"--b  \t\r\n\r\n--b--"),
		"no-blank-line":      hdr + "Content-Type: text/plain\r\n" + att,
		"bad-header":         "this is not a header\r\n\r\n" + att,
		"single-part":        hdr + "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + att,
		"twice-same":         mixed("b1", "--b1\r\n"+part("a/b", att)+"--b1\r\n"+part("a/b", att)+"--b1--\r\n"),
		"empty":              "",
		"empty-parts":        mixed("b1", "--b1\r\n--b1\r\n\r\n--b1--"),
		"headerless-part":    mixed("b1", "--b1\r\n\r\n"+att+"--b1--\r\n"),
		"deep":               hdr + strings.Repeat("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", 40) + att,
	}
}

func TestSplitJoinGenerated(t *testing.T) {
	s := memStore(t)
	for name, m := range generated() {
		t.Run(name, func(t *testing.T) {
			sk := roundTrip(t, s, "g/"+name, []byte(m), nil)
			switch name {
			case "simple", "nested", "single-part", "twice-same", "lf-only", "no-close-delimiter", "headerless-part":
				require.NotEmpty(t, sk.Refs, "the attachment must become a blob")
				require.Less(t, len(sk.Data), 4096, "the skeleton must be small")
			}
			if name == "twice-same" {
				require.Len(t, sk.Refs, 1, "one attachment twice in a message is one blob")
			}
		})
	}
}

// TestSplitSharesAttachment checks the point of the package: the same
// attachment in different messages, including a forward, is one blob.
func TestSplitSharesAttachment(t *testing.T) {
	s := memStore(t)
	g := generated()
	a := roundTrip(t, s, "u/1", []byte(g["simple"]), nil)
	b := roundTrip(t, s, "u/2", []byte(g["forwarded"]), nil)
	require.Len(t, a.Refs, 1)
	require.Equal(t, a.Refs, b.Refs, "a forwarded message/rfc822 must share the original's attachment blob")
	// Without a closing delimiter the final line break stays in the body,
	// as in a single-part message.
	c := roundTrip(t, s, "u/3", []byte(g["no-close-delimiter"]), nil)
	d := roundTrip(t, s, "u/4", []byte(g["single-part"]), nil)
	require.Len(t, c.Refs, 1)
	require.Equal(t, c.Refs, d.Refs)
}

func TestJoinCorruptSkeleton(t *testing.T) {
	s := memStore(t)
	sk := roundTrip(t, s, "u/1", []byte(generated()["simple"]), nil)
	for i := range sk.Data {
		bad := bytes.Clone(sk.Data)
		bad[i] ^= 0x40
		rc, err := dedup.Join(context.Background(), s, bad)
		if err != nil {
			require.ErrorIs(t, err, dedup.ErrCorrupt)
			continue
		}
		// A flipped literal byte still decodes; a flipped hash must not
		// read back silently.
		_, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			require.True(t, isCorruptOrMissing(err), "byte %d: %v", i, err)
		}
	}
	_, err := dedup.Join(context.Background(), s, sk.Data[:len(sk.Data)-1])
	require.ErrorIs(t, err, dedup.ErrCorrupt)
	_, err = dedup.Refs([]byte("nope"))
	require.ErrorIs(t, err, dedup.ErrCorrupt)
}

func isCorruptOrMissing(err error) bool {
	return errors.Is(err, dedup.ErrCorrupt) || errors.Is(err, dedup.ErrNotFound)
}

// FuzzSplitJoin checks that Join(Split(m)) == m for any input.
func FuzzSplitJoin(f *testing.F) {
	for _, m := range generated() {
		if len(m) < 4096 {
			f.Add([]byte(m))
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n--a--\n"))
	s := memStore(f)
	f.Fuzz(func(t *testing.T, m []byte) {
		roundTrip(t, s, "fuzz", m, &dedup.SplitOptions{MinSize: 8})
	})
}
