package statebackend

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// openTimers opens a backend in dir with a timer set on int64 keys whose
// key hash counts its calls in *hashes.
func openTimers(t *testing.T, dir string, cacheBytes int64, hashes *int) (*Backend, *Scope[int64], *Timers[int64]) {
	t.Helper()
	b, err := Open(Config{Dir: dir, CacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewScope[int64](b, nil)
	if err != nil {
		t.Fatal(err)
	}
	hash := s.hash
	s.hash = func(k int64) uint64 { *hashes++; return hash(k) }
	tm, err := NewTimers(s, "timers")
	if err != nil {
		t.Fatal(err)
	}
	return b, s, tm
}

// TestTimersLookUpOnce checks that registering a new timer and firing one
// look its slot up once (a hash for the lookup, one for the insert or the
// read-ahead): each lookup of a timer is a likely cache miss, and a timer
// per session gap made register and fire most of a session window's cost.
// The timers fired were checkpointed, so firing leaves tombstones: a fresh
// timer's entry is removed instead (see table.deleteAt), which hashes the
// entries that move back into its slot, as dropping its tombstone once
// Pebble has it would.
func TestTimersLookUpOnce(t *testing.T) {
	var hashes int
	dir := t.TempDir()
	b, s, tm := openTimers(t, filepath.Join(dir, "db"), 64<<20, &hashes)
	defer b.Close()
	for k := range int64(1000) {
		s.SetKey(k)
		tm.Register(1000)
	}
	checkpointNow(t, b, 1, filepath.Join(dir, "1"))
	// 1400 timers fit the 2048 slots the first 1000 grew the table to.
	hashes = 0
	for k := range int64(400) {
		s.SetKey(k)
		tm.Register(2000)
	}
	if max := 2 * 400; hashes > max {
		t.Errorf("registering 400 new timers hashed %d times, want at most %d", hashes, max)
	}
	hashes = 0
	fired := 0
	tm.Fire(1000, func(int64, int64) { fired++ })
	if fired != 1000 {
		t.Fatalf("fired %d timers at 1000, want 1000", fired)
	}
	if max := 2 * 1000; hashes > max {
		t.Errorf("firing 1000 timers hashed %d times, want at most %d", hashes, max)
	}
}

// TestTimersAllocateNothing checks that a timer registered and fired at a
// new time allocates nothing once the timers' buffers have grown: no boxed
// time in a heap, no new list of keys per time.
func TestTimersAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under the race detector")
	}
	var hashes int
	b, s, tm := openTimers(t, t.TempDir(), 64<<20, &hashes)
	defer b.Close()
	at := int64(1000)
	step := func() {
		at++
		s.SetKey(at % 7)
		tm.Register(at)
		tm.Register(at + 1)
		tm.Fire(at, func(int64, int64) {})
	}
	for range 1000 {
		step() // grow the buffers
	}
	if n := testing.AllocsPerRun(1000, step); n > 0 {
		t.Errorf("%.2f allocations per timer registered and fired, want 0", n)
	}
}

// TestTimersModel registers, deletes and fires random timers against a
// model, with a checkpoint and a restore in the middle and a cache so small
// that timers are evicted and read back from Pebble.
func TestTimersModel(t *testing.T) {
	for _, cache := range []int64{64 << 20, 1 << 10} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			testTimersModel(t, seed, cache)
		})
	}
}

func testTimersModel(t *testing.T, seed uint64, cache int64) {
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	var hashes int
	b, s, tm := openTimers(t, filepath.Join(dir, "live"), cache, &hashes)
	model := map[[2]int64]bool{} // pending (key, time)
	now := int64(0)
	var id uint64
	step := func(b *Backend, s *Scope[int64], tm *Timers[int64]) {
		for range 2000 {
			k, at := rng.Int64N(50), now+1+rng.Int64N(20)
			s.SetKey(k)
			switch r := rng.IntN(10); {
			case r < 6:
				tm.Register(at)
				model[[2]int64{k, at}] = true
			case r < 8:
				tm.Delete(at)
				delete(model, [2]int64{k, at})
			default:
				now += rng.Int64N(3)
				var got, want [][2]int64
				tm.Fire(now, func(key, at int64) {
					if s.Key() != key {
						t.Fatalf("seed %d: firing %d at %d with current key %d", seed, key, at, s.Key())
					}
					got = append(got, [2]int64{key, at})
				})
				for kt := range model {
					if kt[1] <= now {
						want = append(want, kt)
						delete(model, kt)
					}
				}
				slices.SortFunc(got, func(a, b [2]int64) int { return int(a[1]-b[1])*100 + int(a[0]-b[0]) })
				slices.SortFunc(want, func(a, b [2]int64) int { return int(a[1]-b[1])*100 + int(a[0]-b[0]) })
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d: fired %v at %d, want %v", seed, got, now, want)
				}
			}
		}
		id++
		checkpointNow(t, b, id, filepath.Join(dir, fmt.Sprint("chk-", id)))
	}
	step(b, s, tm)
	step(b, s, tm)
	b.Close()
	copyCheckpoint(t, filepath.Join(dir, fmt.Sprint("chk-", id)), filepath.Join(dir, "restored"))
	b, s, tm = openTimers(t, filepath.Join(dir, "restored"), cache, &hashes)
	defer b.Close()
	step(b, s, tm)
	now += 100
	n := 0
	tm.Fire(now, func(int64, int64) { n++ })
	if n != len(model) {
		t.Fatalf("seed %d: %d timers left at the end, want %d", seed, n, len(model))
	}
}
