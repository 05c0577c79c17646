package imapsession_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/imapsession"
)

func flagStrings(fl []imap.Flag) []string {
	out := make([]string, len(fl))
	for i, f := range fl {
		out[i] = string(f)
	}
	slices.Sort(out)
	return out
}

func listNames(t *testing.T, c *imapclient.Client, pattern string, o *imap.ListOptions) map[string][]string {
	t.Helper()
	l, err := c.List("", pattern, o).Collect()
	require.NoError(t, err)
	out := map[string][]string{}
	for _, d := range l {
		var attrs []string
		for _, a := range d.Attrs {
			attrs = append(attrs, string(a))
		}
		out[d.Mailbox] = attrs
	}
	return out
}

// TestFolderCommands: CAPABILITY, NAMESPACE, LIST (CHILDREN, SPECIAL-USE,
// LIST-STATUS, subscribed), SUBSCRIBE, CREATE, RENAME (INBOX too),
// DELETE, STATUS.
func TestFolderCommands(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial(t, "alice", nil)
	caps := c.Caps()
	for _, want := range []imap.Cap{imap.CapIMAP4rev2, imap.CapIMAP4rev1, imap.CapMove, imap.CapUIDPlus, imap.CapSpecialUse, imap.CapListStatus, imap.CapESearch, imap.CapNamespace} {
		assert.True(t, caps.Has(want), "capability %s", want)
	}
	assert.True(t, caps.Has(imap.Cap("APPENDLIMIT=67108864")), "APPENDLIMIT with its value: %v", caps)

	ns, err := c.Namespace().Wait()
	require.NoError(t, err)
	require.Equal(t, '/', ns.Personal[0].Delim)

	require.NoError(t, c.Create("Work/2025/Q1", nil).Wait(), "CREATE makes the superior folders")
	require.NoError(t, c.Create("Sent", nil).Wait())
	err = c.Create("Work", nil).Wait()
	require.Error(t, err, "CREATE of an existing folder fails")
	assert.Contains(t, err.Error(), "ALREADYEXISTS")
	names := listNames(t, c, "*", nil)
	require.Contains(t, names, "INBOX")
	assert.Contains(t, names["Work"], `\HasChildren`)
	assert.Contains(t, names["Work/2025/Q1"], `\HasNoChildren`)
	assert.Contains(t, names["Sent"], `\Sent`, "SPECIAL-USE attribute")
	assert.Len(t, listNames(t, c, "Work/%", nil), 1, "%% matches one level")

	l, err := c.List("", "INBOX", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, UIDNext: true}}).Collect()
	require.NoError(t, err)
	require.Len(t, l, 1)
	require.NotNil(t, l[0].Status, "LIST-STATUS")
	require.EqualValues(t, 0, *l[0].Status.NumMessages)

	special := listNames(t, c, "*", &imap.ListOptions{SelectSpecialUse: true})
	assert.Contains(t, special, "Sent")
	assert.NotContains(t, special, "Work")

	require.NoError(t, c.Subscribe("Work").Wait())
	require.NoError(t, c.Subscribe("Ghost").Wait())
	subs := listNames(t, c, "*", &imap.ListOptions{SelectSubscribed: true})
	require.Contains(t, subs, "Work")
	assert.Contains(t, subs["Ghost"], `\NonExistent`)
	require.NoError(t, c.Unsubscribe("Ghost").Wait())
	subs = listNames(t, c, "*", &imap.ListOptions{SelectSubscribed: true})
	assert.NotContains(t, subs, "Ghost")

	require.NoError(t, c.Rename("Work", "Job", nil).Wait())
	names = listNames(t, c, "*", nil)
	assert.Contains(t, names, "Job/2025/Q1", "RENAME renames the folders below")
	assert.NotContains(t, names, "Work")

	appendClient(t, c, "INBOX", msg("renamed inbox", "x"))
	require.NoError(t, c.Rename("INBOX", "Old", nil).Wait())
	st, err := c.Status("Old", &imap.StatusOptions{NumMessages: true}).Wait()
	require.NoError(t, err)
	require.EqualValues(t, 1, *st.NumMessages, "RENAME INBOX moves its messages")
	st, err = c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	require.NoError(t, err)
	require.EqualValues(t, 0, *st.NumMessages, "and leaves INBOX empty")

	require.NoError(t, c.Delete("Old").Wait())
	require.Error(t, c.Delete("INBOX").Wait())
	require.Error(t, c.Delete("Nope").Wait())
	_, err = c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait()
	require.Error(t, err)
}

// TestMessageCommands: APPEND, SELECT/EXAMINE, FETCH of every item, STORE,
// COPY, MOVE, EXPUNGE, UID EXPUNGE, SEARCH/ESEARCH, STATUS counts.
func TestMessageCommands(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial(t, "alice", nil)
	raw1 := msg("first report", "the quarterly numbers")
	multipart := "From: carol@example.net\r\nTo: alice@example.com\r\nSubject: with attachment\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nAAECAw==\r\n--b--\r\n"
	date := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	cmd := c.Append("INBOX", int64(len(raw1)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged, "work"}, Time: date})
	_, err := cmd.Write([]byte(raw1))
	require.NoError(t, err)
	require.NoError(t, cmd.Close())
	ad, err := cmd.Wait()
	require.NoError(t, err)
	require.EqualValues(t, 1, ad.UID, "APPENDUID")
	inbox, err := e.store.Folder(ctx, "alice", "INBOX")
	require.NoError(t, err)
	require.Equal(t, inbox.UIDValidity, ad.UIDValidity)
	appendClient(t, c, "INBOX", multipart)
	appendClient(t, c, "INBOX", msg("third", "common words here"))

	sd, err := c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	require.EqualValues(t, 3, sd.NumMessages)
	require.EqualValues(t, 4, sd.UIDNext)
	require.Contains(t, flagStrings(sd.Flags), "work", "FLAGS lists the folder's keywords")
	require.Contains(t, flagStrings(sd.PermanentFlags), `\*`)

	// FETCH every item.
	body := &imap.FetchItemBodySection{}
	peekHdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	partial := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true, Partial: &imap.SectionPartial{Offset: 4, Size: 9}}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Flags: true, UID: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		RFC822Size: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{peekHdr, partial},
	}).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.EqualValues(t, 1, m.UID)
	require.Equal(t, []string{`\Flagged`, "work"}, flagStrings(m.Flags))
	require.Equal(t, "first report", m.Envelope.Subject)
	require.Equal(t, "alice", m.Envelope.From[0].Mailbox)
	require.Equal(t, "example.com", m.Envelope.From[0].Host)
	require.Equal(t, "first.report@example.com", m.Envelope.MessageID)
	require.EqualValues(t, len(raw1), m.RFC822Size)
	require.True(t, date.Equal(m.InternalDate), "INTERNALDATE from APPEND: %v", m.InternalDate)
	require.Equal(t, "Subject: first report\r\n\r\n", string(m.FindBodySection(peekHdr)))
	require.Equal(t, "quarterly", string(m.FindBodySection(partial)), "partial fetch")
	require.NotNil(t, m.BodyStructure)

	// BODY[] (not peek) returns the exact bytes and sets \Seen.
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}, BodyStructure: &imap.FetchItemBodyStructure{}}).Collect()
	require.NoError(t, err)
	require.Equal(t, multipart, string(msgs[0].FindBodySection(body)))
	require.Contains(t, flagStrings(msgs[0].Flags), `\Seen`, "a non-peek BODY[] sets \\Seen and reports it")
	mp, ok := msgs[0].BodyStructure.(*imap.BodyStructureMultiPart)
	require.True(t, ok, "multipart body structure")
	require.Len(t, mp.Children, 2)

	bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{bin}}).Collect()
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 2, 3}, msgs[0].FindBinarySection(bin), "BINARY decodes the transfer encoding")

	// STORE.
	msgs, err = c.Store(imap.SeqSetNum(1, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted, "$Label1"}}, nil).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Contains(t, flagStrings(msgs[1].Flags), `\Deleted`)
	msgs, err = c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
	require.NoError(t, err)
	require.Equal(t, []string{"$Label1"}, flagStrings(msgs[0].Flags))
	msgs, err = c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Collect()
	require.NoError(t, err)
	require.Empty(t, msgs, ".SILENT sends no FETCH")
	got, err := e.store.FetchUIDs(ctx, "alice", "INBOX", 3, 3)
	require.NoError(t, err)
	require.Equal(t, []string{`\Answered`}, got[0].Flags)
	require.Error(t, c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.Flag(strings.Repeat("k", mailbox.MaxKeywordLen+1))}}, nil).Close(), "a keyword over MaxKeywordLen is refused")

	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, Size: true, NumDeleted: true}).Wait()
	require.NoError(t, err)
	require.EqualValues(t, 3, *st.NumMessages)
	require.EqualValues(t, 2, *st.NumUnseen)
	require.EqualValues(t, 1, *st.NumDeleted)
	require.EqualValues(t, len(raw1)+len(multipart)+len(msg("third", "common words here")), *st.Size)

	// SEARCH with ESEARCH return options.
	sr, err := c.UIDSearch(&imap.SearchCriteria{Body: []string{"quarterly"}}, nil).Wait()
	require.NoError(t, err)
	require.Equal(t, []imap.UID{1}, sr.AllUIDs())
	sr, err = c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	require.NoError(t, err)
	require.EqualValues(t, 1, sr.Min)
	require.EqualValues(t, 3, sr.Max)
	require.EqualValues(t, 2, sr.Count)
	sr, err = c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "attachment"}}}, nil).Wait()
	require.NoError(t, err)
	require.Equal(t, []uint32{2}, sr.AllSeqNums())
	sr, err = c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Not-Indexed", Value: ""}}}, nil).Wait()
	require.NoError(t, err, "a header the index lacks is evaluated on the message")
	require.Empty(t, sr.AllSeqNums())
	sr, err = c.Search(&imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{"$Label1"}}, {Flag: []imap.Flag{imap.FlagAnswered}}}}}, nil).Wait()
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 3}, sr.AllSeqNums())

	// COPY and MOVE with COPYUID.
	require.NoError(t, c.Create("Archive", nil).Wait())
	cd, err := c.Copy(imap.SeqSetNum(3), "Archive").Wait()
	require.NoError(t, err)
	archive, err := e.store.Folder(ctx, "alice", "Archive")
	require.NoError(t, err)
	require.Equal(t, archive.UIDValidity, cd.UIDValidity)
	require.Equal(t, "3", cd.SourceUIDs.String())
	require.Equal(t, "1", cd.DestUIDs.String())
	_, err = c.Copy(imap.SeqSetNum(1), "Nope").Wait()
	require.ErrorContains(t, err, "TRYCREATE", "COPY to a missing folder")

	md, err := c.Move(imap.SeqSetNum(2), "Archive").Wait()
	require.NoError(t, err)
	require.Equal(t, "2", md.SourceUIDs.String())
	require.Equal(t, "2", md.DestUIDs.String())
	require.EqualValues(t, 2, c.Mailbox().NumMessages, "MOVE expunges from the source")

	// Now INBOX holds UID 1 (\Deleted) and UID 3 (seq 2).
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{UID: true}).Collect()
	require.NoError(t, err)
	require.EqualValues(t, 3, msgs[0].UID, "renumbered after MOVE")

	// UID EXPUNGE only expunges the named \Deleted messages.
	_, err = c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
	require.NoError(t, err)
	exp, err := c.UIDExpunge(imap.UIDSetNum(3)).Collect()
	require.NoError(t, err)
	require.Equal(t, []uint32{2}, exp)
	exp, err = c.Expunge().Collect()
	require.NoError(t, err)
	require.Equal(t, []uint32{1}, exp)
	require.EqualValues(t, 0, c.Mailbox().NumMessages)

	// EXAMINE is read-only.
	sd, err = c.Select("Archive", &imap.SelectOptions{ReadOnly: true}).Wait()
	require.NoError(t, err)
	require.EqualValues(t, 2, sd.NumMessages)
	require.Error(t, c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close())
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}, Flags: true}).Collect()
	require.NoError(t, err)
	require.NotContains(t, flagStrings(msgs[0].Flags), `\Seen`, "EXAMINE does not set \\Seen")
	require.NoError(t, c.Unselect().Wait())
	require.Error(t, c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Close(), "FETCH needs a selected folder")
	require.NoError(t, c.Noop().Wait())
	require.NoError(t, c.Logout().Wait())
}

// TestAuthenticate: AUTHENTICATE PLAIN, bad passwords, TLS policy and the
// per-user session limit.
func TestAuthenticate(t *testing.T) {
	e := newEnv(t, &imapsession.Options{AllowPlaintextLoopback: true, LoginFailureDelay: 50 * time.Millisecond, MaxSessionsPerUser: 2}, false)
	c, err := imapclient.DialInsecure(e.addr, nil)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Authenticate(sasl.NewPlainClient("", "alice", password)))
	c2, err := imapclient.DialInsecure(e.addr, nil)
	require.NoError(t, err)
	defer c2.Close()
	start := time.Now()
	err = c2.Login("alice", "wrong").Wait()
	require.Error(t, err)
	require.Contains(t, err.Error(), "AUTHENTICATIONFAILED")
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "a failed login waits LoginFailureDelay")
	require.NoError(t, c2.Login("alice", password).Wait())
	c3, err := imapclient.DialInsecure(e.addr, nil)
	require.NoError(t, err)
	defer c3.Close()
	err = c3.Login("alice", password).Wait()
	require.Error(t, err, "a third session exceeds MaxSessionsPerUser")
	require.Contains(t, err.Error(), "LIMIT")
	require.NoError(t, c3.Login("bob", password).Wait(), "the limit is per user")
	require.NoError(t, c.Logout().Wait())
	c.Close()
	c4, err := imapclient.DialInsecure(e.addr, nil)
	require.NoError(t, err)
	defer c4.Close()
	require.Eventually(t, func() bool { return c4.Login("alice", password).Wait() == nil }, 5*time.Second, 20*time.Millisecond, "a closed session frees its slot")

	strict := newEnv(t, &imapsession.Options{LoginFailureDelay: -1}, false)
	c5, err := imapclient.DialInsecure(strict.addr, nil)
	require.NoError(t, err)
	defer c5.Close()
	err = c5.Login("alice", password).Wait()
	require.Error(t, err, "plaintext login without TLS is refused by default")
	require.Contains(t, err.Error(), "PRIVACYREQUIRED")
}

func TestAppendLimit(t *testing.T) {
	e := newEnv(t, &imapsession.Options{AllowPlaintextLoopback: true, LoginFailureDelay: -1, AppendLimit: 1000}, false)
	c := e.dial(t, "alice", nil)
	// A synchronizing literal over the limit is refused before it is
	// sent, and the connection goes on. (imapclient closes its connection
	// when a literal it was about to send is refused, so this part speaks
	// the protocol directly. A non-synchronizing LITERAL- literal over the
	// limit makes go-imap's server close the connection, as it cannot skip
	// it.)
	r := e.raw(t)
	r.login(t, "alice")
	r.expect(t, "a APPEND INBOX {5000}", "a NO [TOOBIG]")
	r.expect(t, "b NOOP", "b OK")
	appendClient(t, c, "INBOX", msg("small", "x"))
	ac := c.Append("Missing", 3, nil)
	ac.Write([]byte("x\r\n"))
	ac.Close()
	_, err := ac.Wait()
	require.ErrorContains(t, err, "TRYCREATE")
	n, err := e.store.Counts(ctx, "alice", mailbox.Inbox)
	require.NoError(t, err)
	require.EqualValues(t, 1, n.Total)
}

// TestTLS: over TLS, login works without AllowPlaintextLoopback.
func TestTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	mail, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem(), NoSync: true})
	require.NoError(t, err)
	defer mail.Close()
	srv := imapsession.NewServer(mail.Mailbox, testAuth, &imapsession.Options{LoginFailureDelay: -1})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	go srv.Serve(ln)
	defer srv.Close()
	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Login("alice", password).Wait(), "login over TLS")
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
}
