// Package mailbricks is a library of building blocks for large-scale email
// systems, after the classic distributed email service design that serves
// Gmail and Outlook scale: billions of users, about 10^5 sends a second,
// petabytes a year of message metadata and attachments, and reads that
// concentrate on the last two weeks of mail.
//
// Services import single packages or assemble all of them. Every block has
// one small interface, an embedded default that needs nothing but a local
// directory, and backends on existing distributed engines for deployments
// that outgrow one machine.
//
// # Packages
//
//   - mailbricks (this package) holds the types every block shares:
//     [UserID], the partitioning key of all per-user data, and
//     [MessageID], a time-ordered UUIDv7 that sorts bytewise by creation
//     time, plus their errors.
//   - [github.com/mailbricks/mailbricks/lsm] is a log-structured
//     merge-tree storage engine (write-ahead log with group commit,
//     memtable, SSTables with bloom filters and block compression,
//     leveled compaction, snapshots, atomic batches, merge operators and
//     iterators). It is the embedded storage under the other blocks, and
//     its lsm/vfs package supplies in-memory, crash-simulating and
//     fault-injecting file systems for tests.
//
// # Portable types over backends
//
// Each block follows the shape of database/sql and gocloud.dev/blob: the
// domain package holds a portable type that applications use, for example
// a *mailbox.Store, written over a small Backend interface. Logic that is
// the same for every backend (validation, parsing, retries, metrics,
// closed state) lives once in the portable type. Backends are subpackages
// named after their engine and domain: an embedded one on lsm that needs
// only a directory, and distributed ones on PostgreSQL, NATS JetStream,
// Redis or an S3-compatible object store. Every backend of a domain passes
// the same importable conformance suite, which applications can also run
// against backends of their own.
//
// # Errors
//
// Errors are sentinels with a package prefix, such as [ErrInvalidUser] and
// [ErrInvalidMessageID]; returned errors wrap them, so callers test with
// [errors.Is].
package mailbricks
