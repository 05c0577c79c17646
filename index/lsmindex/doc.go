// Package lsmindex is the embedded [index.Backend]: a per-user positional
// inverted index on the mailbricks lsm engine.
//
// # Layout
//
// Every key starts with the user ID, so a user's index is one key range:
// postings per (field, term), a doc record per document (its ID and doc
// values), its stored subject and body for snippets, deleted-doc markers
// and the user's next doc number. The byte layout is documented at the top
// of layout.go.
//
// # Writes
//
// A batch of documents is one atomic lsm batch. Each document gets the
// user's next doc number (per-user, increasing, never reused); the batch's
// documents are analyzed (in parallel) into one postings chunk per (field,
// term) — doc numbers delta-varint encoded, each with its positions — and
// each chunk is appended to the term's postings with an lsm merge operand
// ([Merger], concatenation), so indexing never reads postings before
// writing them. Writing per batch rather than per document and term is
// what makes bulk indexing fast: one operand per distinct term of the
// batch.
//
// Deletes (and replacements, which delete the old version) remove the doc
// record and write a deleted-doc marker; the postings keep the old doc
// number until a purge, and searches filter it out through the in-memory
// live set. A purge ([Backend.Purge], run by Delete once
// [Options].PurgeAfter markers have accumulated) rewrites the user's
// postings that name deleted documents as single chunks without them and
// removes the markers; the lsm engine's own compactions fold the merge
// operands of every other key. Updates of doc values rewrite only the doc
// record.
//
// # Reads
//
// A user's doc values (and the doc number of each message ID, and a
// newest-first order of doc numbers) are loaded into memory on the first
// call for the user and kept there, about 150 bytes per document plus the
// strings; searches filter and sort on them without reading the DB.
// Queries are evaluated on bitsets over doc numbers from one lsm snapshot;
// phrases check positions only for the documents every word of the phrase
// is in; a prefix is a range scan of the term dictionary.
//
// # Analyzer version
//
// The user's postings hold terms of one [index.AnalyzerVersion], which is
// recorded with the user's first documents. A user whose live documents
// were indexed by another version (an index written before the version
// was recorded counts as version 1) is stale: Search returns an error
// matching [index.ErrStale] until [index.Index.Reindex] rebuilds the user;
// writes, List and the other users are unaffected, so users can be
// rebuilt one at a time while the service runs.
//
// # Semantics
//
// All writes of one user are serialized; a write is visible to every
// search that starts after it returns, and a search sees a consistent
// state. With [Options].NoSync unset, an acknowledged write survives a
// machine crash; after a crash the index reopens to a prefix of the
// acknowledged writes, never a torn batch. Users are isolated by key
// range. The DB directory is locked to one process.
package lsmindex
