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
// record (and, for a document of a sealed chunk, write its overlay marker:
// see Cold start).
//
// # Reads
//
// Searches filter and sort on a user's doc values in memory, without
// reading the DB: the dates and flags of the user's documents as
// columns, a live set, and an oldest-first order of doc numbers; the IDs
// and the rest of each document's values (folder, keywords, thread,
// sizes, UIDs) are read per chunk of 1,024 doc numbers when a call first
// needs them: a search's hits and date ties through a view of the
// chunk's encoded value that reads one document at a time (every 64th
// entry of each column marked, so a read skips at most 63), a folder or
// keyword filter, Get and List by decoding the chunk whole. Filters on
// doc values inside an AND test only the documents its other operands
// left. Queries are
// evaluated on bitsets over doc numbers (reused from one search to the
// next), reading the DB under the user's read lock, which excludes the
// user's writes, so a search sees one state without an lsm snapshot; phrases
// check positions only for the documents every word of the phrase is in;
// a prefix is a range scan of the term dictionary.
//
// # Cold start
//
// Doc values are also written per chunk of 1,024 doc numbers as two
// column-oriented values, sealed when the chunk's last doc number is
// allocated: the live set, dates (delta-encoded) and flags, about three
// bytes a document, which is all that loading a user reads; and the IDs
// and the rest, read a chunk at a time as above. Later changes to a
// sealed document leave an overlay marker that loading follows, and are
// folded back into their chunks once 1,024 have accumulated (see
// columns.go). Loading 100,000 documents reads about 300 KB and takes a
// few milliseconds, where reading one record per document took over a
// hundred; the deleted-doc markers are read by the first write, not by
// the load. Indexes written before chunks existed, or with the IDs in the
// values loading reads (layout version 2), are migrated (their chunks
// written again) the first time each user is loaded.
//
// # Memory budget
//
// The doc values of the users in memory are bounded by
// [Options].MemoryBudget (default 256 MiB, [DefaultMemoryBudget]): when
// a call releases a user and the total passes the budget, the least
// recently used users that no call is using are unloaded, and loaded again
// from their chunks on their next call. A loaded user costs about 11
// bytes a document plus, for the chunks decoded, about 160 bytes a
// document and its strings, or for the chunks only viewed, their encoded
// bytes and marks; [Backend.CacheBytes] reports the total. The
// lsm engine's block cache ([Options].CacheSize, default 64 MiB) and
// memtables ([Options].MemTableSize each, default 64 MiB, at most three) are
// the backend's other memory; nothing else grows with the number of
// users or documents.
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
