// Package dedup is a content-addressed blob store for mail attachments,
// with exact reference tracking, crash-safe garbage collection, and MIME
// part extraction (RFC 2045, RFC 2046) with byte-exact reassembly.
//
// A blob is named by the SHA-256 of its bytes ([Ref] = hash and length),
// so an attachment sent to 100 recipients, or forwarded again, is stored
// once. [Store.Put] streams the bytes (hashing them while they are written
// to a temporary object) and publishes the blob create-if-absent.
// References are exact: [Store.Link] records an owner (for example
// "user/messageID/part") and [Store.Unlink] removes it; both are
// idempotent, so a retried call never skews a count. Put gives the new
// blob a temporary link that expires after [Options.Grace], so a blob
// uploaded but not linked yet is never collected. [Store.PutLink] is Put
// and Link in one call, one durable step on backends that support it (for
// dedup/filededup, one synced write for a small blob). [Store.GC] deletes blobs
// with no link and no unexpired temporary link, working from a log of
// candidates rather than a scan; its doc comment gives the algorithm and
// the argument for why it never deletes a referenced blob.
//
// [Split] stores the large leaf parts of a message as blobs and returns a
// small [Skeleton]; [Join] streams the original bytes back, exactly, for
// every input, including malformed MIME. [Refs] lists a skeleton's blobs,
// to link them for a copy of the message or unlink them on expunge.
//
//	store := dedup.New(backend, nil)
//	sk, err := dedup.Split(ctx, store, "alice/0191.../", msg, nil)
//	... store sk.Data with the message ...
//	rc, err := dedup.Join(ctx, store, sk.Data)
//
// Keys, paths and object names are derived from hashes only; nothing from
// a message reaches them. Owners are stored as data (escaped where a
// backend puts them in a key).
//
// # Backends
//
// The one-call setup opens the embedded default in a directory and returns
// a ready Store:
//
//	blobs, err := filededup.OpenStore("/var/lib/mail/blobs", nil)
//
// The backends:
//
//   - dedup/filededup: the embedded default; a directory of files sharded
//     by hash prefix, links and the candidate log on the lsm engine, and
//     small blobs (64 KiB by default) inline as lsm records.
//   - dedup/s3dedup: any S3-compatible server through minio-go, with
//     If-None-Match create-if-absent; several processes may share a
//     bucket.
//
// # Errors
//
// [ErrNotFound] for a missing blob (and for Link to a blob GC has taken:
// put the bytes again), [ErrCorrupt] when stored bytes do not match their
// reference or a skeleton does not decode, [ErrInvalidRef] for a malformed
// reference, [ErrInvalidOwner] for an empty or too long owner, and
// [ErrClosed] after Close. Match them with errors.Is.
//
// # Implementing a Backend
//
// A [Backend] stores blobs under their hash, links, temporary links and a
// candidate log ordered by due time. The Store hashes, validates, and runs
// the GC loop; the backend provides the atomic steps the GC argument needs:
//
//   - Upload.Commit records the temporary link and a candidate due at its
//     expiry, durably, before the blob's name can become visible or
//     durable; then publishes create-if-absent.
//   - Link succeeds only if the blob exists, and is exclusive with
//     Collect's re-check for the same hash.
//   - Unlink of the last link adds a candidate due now, atomically (or
//     before returning).
//   - Collect re-checks links and unexpired temporary links for a hash,
//     exclusive with Commit and Link for that hash, before deleting, and
//     removes a candidate only after its deletion is durable.
//   - Optionally, an Upload implements [LinkingUpload]: CommitLink
//     publishes and links in one step, and may skip the temporary link
//     and candidate only where the link becomes durable with the blob.
//
// Run dedup/deduptest.Run against a new backend to check it.
package dedup
