// Package index is the full-text search block of mailbricks: a per-user,
// positional inverted index of email messages with the query language
// people already type into Gmail, and a structured [Query] able to express
// every IMAP SEARCH criterion (RFC 3501 section 6.4.4, RFC 9051 section
// 6.4.4, and MODSEQ of RFC 7162), so an IMAP server can sit on it.
//
// Email search is write-heavy: every receive, move and delete changes the
// index, and each query touches one user's mail. Users hold an [Index],
// made by [New] over a [Backend]:
//
//	b, err := lsmindex.Open(dir, nil)
//	x := index.New(b, nil)
//	doc, err := index.DocumentFromMessage(id, bytes.NewReader(raw), index.Values{Date: received, Folder: "INBOX"})
//	err = x.Index(ctx, user, doc)
//	res, err := x.SearchString(ctx, user, `from:alice "quarterly report" has:attachment`, nil)
//
// # Documents
//
// A [Document] holds a message's searchable text — addresses, subject,
// the decoded text of every text part (HTML reduced to text), attachment
// file names and a few headers — and its [Values]: dates, size, folder,
// flags, keywords, thread, IMAP UID and MODSEQ. [DocumentFromMessage]
// builds one from a raw RFC 5322 message read from an io.Reader, with the
// parser and header-decoding policy mailbox uses too (RFC 2045–2047
// decoding, charsets set up explicitly, no global side effects).
// [Index.Update] changes
// Values without indexing the text again.
//
// # Tokens
//
// [Tokenize] is the one analyzer every backend shares: Unicode word
// segmentation (UAX #29), case and diacritic folding that never drops a
// letter, character bigrams for scripts written without spaces (Chinese,
// Japanese, Korean, Thai, Lao, Khmer, Myanmar) and address-aware tokens
// (see the block comment in tokenize.go). There is no stemming: a word
// matches the same word, folded. Text criteria match whole words and
// phrases, not substrings: IMAP SUBJECT "port" does not match "report";
// in the space-less scripts any substring of two characters or more
// matches. [AnalyzerVersion] names the analysis; backends that store terms
// record it and report [ErrStale] for a user indexed by another version.
//
// Plain words and prefixes (and IMAP TEXT) search the [ContentFields]:
// addresses and names, subject, body and attachment file names, not the
// further headers, whose values IMAP HEADER ([HeaderText]) finds.
//
// # Limits
//
// Every list a caller controls is bounded: queries by [MaxQueryLen],
// [MaxQueryTerms], [MaxQueryDepth] and [MaxQueryUIDRanges] (also for
// structured queries given to [Index.Search]), documents by
// [MaxDocumentAddresses], [MaxDocumentFilenames], [MaxDocumentHeaders] and
// [MaxKeywords].
//
// # Queries
//
// [Parse] reads the query language and reports errors as *[ParseError]
// with the byte position of the problem. Results come newest first unless
// [SearchOptions].Sort says otherwise, with the total number of matches, a
// cursor for the next page and a snippet with highlighted matches per hit.
//
// # Keeping the index in step with the mailbox
//
// [Index.Check] compares a user's index with a [Source] (the mailbox) and
// reports drift: missing, extra and stale documents. [Index.Repair] fixes
// it and [Index.Reindex] rebuilds the user's index from scratch.
//
// # Backends
//
// The one-call setup opens the embedded default in a directory and returns
// a ready Index:
//
//	idx, err := lsmindex.OpenIndex("/var/lib/mail/index", nil)
//
// To keep it current with a mailbox, pass it as the mailbox Store's
// Options.Index (package embedded does both in one call); to build one by
// hand, [DocumentFromMessage] turns a raw message into a [Document].
//
//   - index/lsmindex: the embedded default, on the lsm engine: postings
//     appended with merge operands (no read before write), doc values in
//     memory per user, prefix queries by range scan.
//   - index/pgindex: PostgreSQL full-text search, a tsvector of this
//     package's terms with a GIN index, doc values as columns.
//
// Both pass the conformance suite in index/indextest.
//
// # Errors
//
// [ErrNotFound] (Update of a message that is not indexed), [ErrClosed],
// [ErrBadQuery] (every *ParseError matches it), [ErrStale], [ErrBadCursor],
// [ErrMalformed] (kept for compatibility: DocumentFromMessage indexes any
// input as far as it can be read) and [ErrInvalidDocument] (also
// DocumentFromMessage with a nil reader). Users are validated with [mailbricks.UserID.Validate]
// (errors wrap [mailbricks.ErrInvalidUser]).
//
// # Implementing a Backend
//
// A [Backend] stores documents per user and evaluates resolved queries
// (see [Query.Resolve]): it must index exactly the terms [Document.Analyze]
// yields, match a KindText node's Terms as a phrase (consecutive positions,
// the last a prefix if Prefix is set), evaluate doc-value criteria on
// [Values] as documented on [Kind], and order hits with [Less]. Run
// indextest.Run against it; the suite's brute-force evaluator is the
// reference semantics.
package index
