package lsmmailbox

// TestCrash follows the model of lsm's crash test: workers run a random
// workload with sync on while crash images (vfs.CrashableFS.CrashClone) are
// taken at random moments of it, and each image, reopened, must hold
//
//   - every operation acknowledged (returned without error) before the
//     image was taken: each such Append's message present with its exact
//     skeleton bytes, subject, size, folder and flags; each Expunge's
//     messages gone; each SetFlags' and Move's effect visible, unless a
//     later acknowledged operation changed the message again;
//   - each operation in flight at the image (started, not yet returned)
//     either entirely or not at all: all its messages before it, or all
//     after it;
//   - nothing else: no message that was never appended;
//   - consistent keys (checkConsistent) and counters (Recount equals the
//     folder's counts).
//
// Each worker owns the messages it appends and changes only those, so the
// operations on one message are sequential and the state a message may
// have in an image is one of at most two: after its last acknowledged
// operation, or after the one in flight. An acknowledgement is recorded
// only after the operation returned, and an operation is registered as in
// flight before it starts; the model is copied and the image taken under
// the lock that registration takes, so an operation that returns meanwhile
// counts as in flight, never as acknowledged too early, and none that the
// copy lacks can have started.

import (
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
)

// crashMsg is what a message is expected to be after some operation.
type crashMsg struct {
	exists bool
	folder string
	flags  []string
	rec    *mailbox.Record // as appended: skeleton, subject, size
}

// crashModel is the expected state of one message: after its last
// acknowledged operation (acked, nil if none), and after the operation in
// flight on it (pending, nil if none; op is that operation's number, the
// same for all messages it touches).
type crashModel struct {
	acked, pending *crashMsg
	op             int64
}

// crashImage is a crash image and the model copied just before it.
type crashImage struct {
	fs     *vfs.CrashableFS
	model  map[mailbricks.MessageID]crashModel
	acks   int // operations acknowledged before the image
	seed   int64
	unsync int
}

func TestCrash(t *testing.T) {
	cycles, long := 16, os.Getenv("MAILBRICKS_LONG") == "1"
	if long {
		cycles = 2000
	}
	const workers, opsPerWorker, imagesPerCycle = 3, 60, 3
	folders := []string{mailbox.Inbox, "Archive"}
	user := mailbricks.UserID("crash@example.com")
	var totalAcks, totalMsgs, totalPending, totalImages int
	for cycle := range cycles {
		fs := vfs.NewCrashable()
		b, err := Open("db", &Options{FS: fs, LSM: &lsm.Options{MemTableSize: 64 << 10}})
		require.NoError(t, err)
		for _, f := range folders {
			_, err := b.CreateFolder(ctx, user, f, mailbox.FolderRole(f))
			require.NoError(t, err)
		}
		r := rand.New(rand.NewPCG(uint64(cycle), 9))
		// The images are taken when the global operation count reaches
		// these numbers, by the worker whose operation reached it.
		total := int64(workers * opsPerWorker)
		imageAt := map[int64]int{}
		for len(imageAt) < imagesPerCycle {
			if at := 1 + r.Int64N(total-1); imageAt[at] == 0 {
				imageAt[at] = len(imageAt) + 1 // image number + 1
			}
		}
		var (
			mu     sync.Mutex
			model  = map[mailbricks.MessageID]crashModel{}
			acks   int
			opSeq  atomic.Int64
			images = make([]crashImage, imagesPerCycle)
		)
		// take copies the model and takes the image under mu, so that no
		// operation starts in between: one that is not in the copy has not
		// started when the image is taken. Operations in flight go on
		// meanwhile (they need mu only to record their end).
		take := func(i int) {
			mu.Lock()
			defer mu.Unlock()
			seed := int64(cycle*imagesPerCycle + i)
			unsync := []int{0, 50, 100}[i%3]
			images[i] = crashImage{model: maps.Clone(model), acks: acks, seed: seed, unsync: unsync,
				fs: fs.CrashClone(vfs.CrashCloneOptions{Seed: seed, UnsyncedDataPercent: unsync})}
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
				var mine []mailbricks.MessageID // messages of this worker not expunged
				cur := map[mailbricks.MessageID]*crashMsg{}
				for i := range opsPerWorker {
					op := opSeq.Add(1)
					var some []mailbricks.MessageID
					for range 1 + r.IntN(3) {
						if len(mine) > 0 {
							some = append(some, mine[r.IntN(len(mine))])
						}
					}
					slices.SortFunc(some, cmpID)
					some = slices.Compact(some)
					// next is each touched message's state after the operation.
					next := map[mailbricks.MessageID]*crashMsg{}
					var do func() error
					switch k := r.IntN(7); {
					case k <= 1 || len(some) == 0:
						rc := rec(folders[r.IntN(2)], i, r.IntN(3) == 0)
						rc.Skeleton = append(rc.Skeleton, make([]byte, r.IntN(2000))...)
						next[rc.ID] = &crashMsg{exists: true, folder: rc.Folder, flags: rc.Flags, rec: rc}
						do = func() error { _, _, err := b.Append(ctx, user, rc); return err }
					case k <= 4:
						ch := mailbox.FlagChange{Op: mailbox.FlagOp(k - 2), Flags: []string{mailbox.FlagSeen}}
						if ch.Op == mailbox.FlagReplace {
							ch.Flags = [][]string{{}, {"kw"}, {mailbox.FlagFlagged, mailbox.FlagSeen}}[r.IntN(3)]
						}
						for _, id := range some {
							n := *cur[id]
							n.flags = ch.Op.Apply(n.flags, ch.Flags)
							next[id] = &n
						}
						do = func() error { _, err := b.SetFlags(ctx, user, some, ch); return err }
					case k == 5:
						dest := folders[r.IntN(2)]
						for _, id := range some {
							n := *cur[id]
							n.folder = dest
							next[id] = &n
						}
						do = func() error { _, err := b.Move(ctx, user, some, dest); return err }
					default:
						for _, id := range some {
							next[id] = &crashMsg{}
						}
						do = func() error { _, err := b.Expunge(ctx, user, some); return err }
					}
					mu.Lock()
					for id, n := range next {
						m := model[id]
						m.pending, m.op = n, op
						model[id] = m
					}
					mu.Unlock()
					if err := do(); err != nil {
						t.Errorf("cycle %d worker %d op %d: %v", cycle, w, op, err)
						return
					}
					mu.Lock()
					for id, n := range next {
						model[id] = crashModel{acked: n}
					}
					acks++
					mu.Unlock()
					for id, n := range next {
						if n.exists {
							if cur[id] == nil {
								mine = append(mine, id)
							}
							cur[id] = n
						} else {
							delete(cur, id)
							mine = slices.DeleteFunc(mine, func(x mailbricks.MessageID) bool { return x == id })
						}
					}
					if i := imageAt[op]; i > 0 {
						take(i - 1)
					}
				}
			}()
		}
		wg.Wait()
		require.NoError(t, b.Close())
		if t.Failed() {
			return
		}
		for i, img := range images {
			msgs, pending := checkCrashImage(t, img, user, folders)
			if !long {
				t.Logf("cycle %d image %d (unsynced data kept %d%%): %d acknowledged operations before the image, %d messages checked, %d in flight",
					cycle, i, img.unsync, img.acks, msgs, pending)
			}
			totalAcks += img.acks
			totalMsgs += msgs
			totalPending += pending
			totalImages++
		}
	}
	t.Logf("%d images: %d acknowledged operations checked, %d message states checked, %d operations in flight at the images",
		totalImages, totalAcks, totalMsgs, totalPending)
}

// checkCrashImage reopens img and checks it against its model. It returns
// the number of messages checked and of operations in flight.
func checkCrashImage(t *testing.T, img crashImage, user mailbricks.UserID, folders []string) (msgs, pending int) {
	t.Helper()
	rb, err := Open("db", &Options{FS: img.fs})
	require.NoError(t, err, "image seed %d: a crash image must reopen", img.seed)
	defer rb.Close()
	checkConsistent(t, rb, user)
	for _, f := range folders {
		fo, err := rb.Folder(ctx, user, f)
		require.NoError(t, err)
		c, err := rb.Recount(ctx, user, f)
		require.NoError(t, err)
		require.Equal(t, c, fo.Counts, "image seed %d folder %s: counters must equal a recount", img.seed, f)
	}
	// Every message in the image must be in the model.
	var after mailbricks.MessageID
	for {
		page, err := rb.Scan(ctx, user, after, 500)
		require.NoError(t, err)
		for _, m := range page {
			_, ok := img.model[m.ID]
			require.True(t, ok, "image seed %d: message %s was never appended", img.seed, m.ID)
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	// For each operation in flight, whether it is in the image: all its
	// messages must agree.
	inImage := map[int64]bool{}
	for _, id := range slices.SortedFunc(maps.Keys(img.model), cmpID) {
		m := img.model[id]
		got, err := rb.Get(ctx, user, id)
		var state crashMsg
		if err == nil {
			state = crashMsg{exists: true, folder: got.Folder, flags: got.Flags}
		} else {
			require.ErrorIs(t, err, mailbox.ErrNotFound, "image seed %d: get %s", img.seed, id)
		}
		matches := func(want *crashMsg) bool {
			if want == nil {
				return !state.exists
			}
			if want.exists != state.exists {
				return false
			}
			if !want.exists {
				return true
			}
			return want.folder == state.folder && slices.Equal(sorted(want.flags), sorted(state.flags)) &&
				got.Subject == want.rec.Subject && got.Size == want.rec.Size
		}
		msgs++
		switch {
		case m.pending == nil:
			require.True(t, matches(m.acked), "image seed %d: message %s must be as its last acknowledged operation left it: want %+v, got %+v (get error %v)",
				img.seed, id, m.acked, state, err)
		default:
			a, p := matches(m.acked), matches(m.pending)
			require.True(t, a || p, "image seed %d: message %s must be as before or after the operation in flight: before %+v, after %+v, got %+v",
				img.seed, id, m.acked, m.pending, state)
			if a != p {
				if was, ok := inImage[m.op]; ok {
					require.Equal(t, was, p, "image seed %d: operation %d in flight must be in the image entirely or not at all", img.seed, m.op)
				}
				inImage[m.op] = p
			}
		}
		if state.exists {
			want := m.acked
			if want == nil || !want.exists {
				want = m.pending
			}
			sk, err := rb.Skeleton(ctx, user, id)
			require.NoError(t, err, "image seed %d: message %s without its skeleton", img.seed, id)
			require.Equal(t, want.rec.Skeleton, sk, "image seed %d: message %s: skeleton bytes must survive exactly", img.seed, id)
		}
	}
	ops := map[int64]bool{}
	for _, m := range img.model {
		if m.pending != nil {
			ops[m.op] = true
		}
	}
	return msgs, len(ops)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}

func cmpID(a, b mailbricks.MessageID) int { return slices.Compare(a[:], b[:]) }
