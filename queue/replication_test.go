package queue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

// unreplicatedLog collects what a store's OnUnreplicated hears.
type unreplicatedLog struct {
	mu   sync.Mutex
	seen []Unreplicated
}

func (l *unreplicatedLog) add(u Unreplicated) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, u)
}

func (l *unreplicatedLog) all() []Unreplicated {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Unreplicated(nil), l.seen...)
}

func replicatedStore(t testing.TB, rdb redis.UniversalClient, clk clock.Clock, replicas int, timeout time.Duration, log *unreplicatedLog) *Store {
	t.Helper()
	s, err := New(rdb, Options{Clock: clk, Queues: []string{testQueue, otherQ}, WaitReplicas: replicas, WaitTimeout: timeout,
		OnUnreplicated: log.add})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// The writes that make or keep a promise wait for the configured replicas. Fewer answering in
// time is reported, not refused: the promise is made on the primary all the same.
func TestWritesThatMakeOrKeepAPromiseWaitForReplicas(t *testing.T) {
	primary := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{ReplicaOf: primary.Addr()})
	alone := redistest.Start(t, redistest.Options{})
	cluster := redistest.Start(t, redistest.Options{Cluster: true})
	clusterClient := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{cluster.Addr()}})
	t.Cleanup(func() { _ = clusterClient.Close() })

	cases := []struct {
		name     string
		rdb      redis.UniversalClient
		replicas int
		// timeout is long where a replica must answer in time (a loaded machine is slow),
		// short where the wait is bound to run out.
		timeout time.Duration
		// want is the writes reported, by name, with how many replicas had them.
		want map[string]int
	}{
		{"a replica acknowledges: nothing to report", primary.Client(), 1, MaxWaitTimeout, map[string]int{}},
		{"no replica: each write reported with 0 acknowledgements", alone.Client(), 1, 20 * time.Millisecond,
			map[string]int{WriteEnqueue: 0, WriteConnected: 0}},
		{"two wanted, one replica: reported with 1", primary.Client(), 2, time.Second,
			map[string]int{WriteEnqueue: 1, WriteConnected: 1}},
		{"waiting off: nothing asked, nothing reported", alone.Client(), 0, 0, map[string]int{}},
		{"Redis Cluster: the WAIT goes to the slot's primary", clusterClient, 1, 20 * time.Millisecond,
			map[string]int{WriteEnqueue: 0, WriteConnected: 0}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			log := &unreplicatedLog{}
			s := replicatedStore(t, tc.rdb, clock.NewFake(t0), tc.replicas, tc.timeout, log)
			number := []string{alice, bob, "+31201234503", "+31201234504", "+31201234505"}[i]
			j, _, err := s.Enqueue(ctx, request(number))
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			claimed, err := s.Claim(ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute})
			if err != nil || claimed.ID != j.ID {
				t.Fatalf("Claim = %v, %v; want the promise just made", claimed, err)
			}
			if _, err := s.MarkConnected(ctx, j.Ref(), claimed.Lease.Token, t0); err != nil {
				t.Fatalf("MarkConnected: %v", err)
			}
			if got, err := s.Get(ctx, j.Ref()); err != nil || got.State != StateConnected {
				t.Fatalf("after the writes, the promise on the primary is %v, %v; want connected", got.State, err)
			}
			got := map[string]int{}
			for _, u := range log.all() {
				if u.ID != j.ID || u.Queue != testQueue || u.Wanted != tc.replicas || u.Err != nil {
					t.Errorf("report %+v; want one of promise %s in %s, %d wanted, no error", u, j.ID, testQueue, tc.replicas)
				}
				got[u.Write] = u.Acked
			}
			if len(got) != len(tc.want) {
				t.Fatalf("reported %v; want %v", got, tc.want)
			}
			for w, n := range tc.want {
				if a, ok := got[w]; !ok || a != n {
					t.Errorf("write %s reported with %d acknowledgements (reported: %v); want %d", w, a, ok, n)
				}
			}
		})
	}
	// What the replica acknowledged, it has.
	onReplica, err := New(replica.Client(), Options{Queues: []string{testQueue}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := onReplica.Stats(context.Background(), testQueue); err != nil || st.Connected != 2 {
		t.Errorf("the replica's queue: %+v, %v; want the 2 promises made on its primary, connected", st, err)
	}
}

func TestNewRefusesAWaitItCannotKeep(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	cases := []struct {
		name     string
		replicas int
		timeout  time.Duration
	}{
		{"negative replicas", -1, 0},
		{"a timeout under WAIT's millisecond", 1, 500 * time.Microsecond},
		{"a timeout past the client's read timeout", 1, 3 * time.Second},
		{"a negative timeout", 1, -time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(rdb, Options{Queues: []string{testQueue}, WaitReplicas: tc.replicas, WaitTimeout: tc.timeout})
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("New(WaitReplicas %d, WaitTimeout %v) = %v; want ErrInvalid", tc.replicas, tc.timeout, err)
			}
		})
	}
}

// A failover in the middle of a run loses no promise a replica acknowledged: promises are made
// without pause through the sentinels while the primary is killed with SIGKILL; every one whose
// Enqueue returned with the replica's acknowledgement is on the promoted replica, and the store
// goes on there — promises made, claimed, connected and kept after the failover. Until the old
// primary is back (as the new one's replica) nobody acknowledges: those promises are made and
// reported; once it is, they are acknowledged again.
func TestAFailoverLosesNoPromiseAReplicaAcknowledged(t *testing.T) {
	d := redistest.StartSentinel(t, redistest.SentinelOptions{})
	ctx := context.Background()
	log := &unreplicatedLog{}
	// A replica slower than the timeout only makes fewer promises count as acknowledged.
	s := replicatedStore(t, d.Client(), clock.NewFake(t0), 1, 250*time.Millisecond, log)

	var (
		mu       sync.Mutex
		acked    []Ref // acknowledged by the replica, in order
		made     int   // Enqueues that succeeded, acknowledged or not
		failures int   // Enqueues that returned an error: not acknowledged, so not promised
	)
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return made, len(acked) }
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		var g numbers
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			before := len(log.all())
			j, _, err := s.Enqueue(ctx, benchRequest(g.next(), i))
			mu.Lock()
			switch {
			case err != nil:
				failures++
			case len(log.all()) == before:
				acked = append(acked, j.Ref())
				fallthrough
			default:
				made++
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-stopped
	})
	waitFor(t, "promises acknowledged before the kill", func() bool { _, a := count(); return a >= 50 })
	old := d.KillPrimary()
	promoted := d.AwaitFailover(old)
	atFailover, _ := count()
	waitFor(t, "promises made on the promoted replica", func() bool { m, _ := count(); return m >= atFailover+5 })
	old.Restart()
	_, atReturn := count()
	waitFor(t, "promises acknowledged by the old primary, back as a replica", func() bool { _, a := count(); return a >= atReturn+20 })
	close(stop)
	<-stopped

	// Read the promoted replica itself, not through the client that made the promises.
	onPromoted, err := New(promoted.Client(), Options{Queues: []string{testQueue, otherQ}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ref := range acked {
		if j, err := onPromoted.Get(ctx, ref); err != nil || j.State != StatePending {
			t.Errorf("acknowledged promise %s on the promoted replica: %v, %v; want it pending", ref.ID, j.State, err)
		}
	}
	t.Logf("%d promises acknowledged, %d Enqueues failed during the failover, %d reported unreplicated",
		len(acked), failures, len(log.all()))

	claimed, err := s.Claim(ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute})
	if err != nil {
		t.Fatalf("Claim after the failover: %v", err)
	}
	if _, err := s.MarkConnected(ctx, claimed.Ref(), claimed.Lease.Token, t0); err != nil {
		t.Fatalf("MarkConnected after the failover: %v", err)
	}
	if _, err := s.Complete(ctx, claimed.Ref(), claimed.Lease.Token, StateKept, ""); err != nil {
		t.Fatalf("Complete after the failover: %v", err)
	}
	if j, err := onPromoted.Get(ctx, claimed.Ref()); err != nil || j.State != StateKept {
		t.Errorf("the promise kept after the failover is %v, %v on the promoted replica; want kept", j.State, err)
	}
}

// waitFor polls cond; the limit only guards against a hang.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wall := clock.Real{}
	guard := wall.After(60 * time.Second)
	for !cond() {
		select {
		case <-guard:
			t.Fatalf("gave up waiting for %s", what)
		case <-wall.After(10 * time.Millisecond):
		}
	}
}

// The stricter alternative to WAIT is Redis' own: a primary with min-replicas-to-write refuses
// writes while too few replicas are connected. The promise is then not made at all, and the
// error is not one of the store's refusals, so the caller retries it (the intake does).
func TestAPrimaryThatNeedsReplicasToWriteRefusesThePromiseUntilItHasThem(t *testing.T) {
	ctx := context.Background()
	primary := redistest.Start(t, redistest.Options{})
	rdb := primary.Client()
	if err := rdb.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	log := &unreplicatedLog{}
	s := replicatedStore(t, rdb, clock.NewFake(t0), 1, 500*time.Millisecond, log)
	_, _, err := s.Enqueue(ctx, request(alice))
	if err == nil || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Fatalf("Enqueue on a primary without its replica = %v; want Redis' NOREPLICAS", err)
	}
	for _, refusal := range []error{ErrInvalid, ErrUnknownQueue, ErrWrongState} {
		if errors.Is(err, refusal) {
			t.Errorf("the NOREPLICAS error %v is a refusal (%v); want a failure to retry", err, refusal)
		}
	}
	if st, err := s.Stats(ctx, testQueue); err != nil || st.Made != 0 {
		t.Errorf("after the refused write: %+v, %v; want nothing made", st, err)
	}
	if got := log.all(); len(got) != 0 {
		t.Errorf("a write that was not made was reported unreplicated: %+v", got)
	}

	redistest.Start(t, redistest.Options{ReplicaOf: primary.Addr()})
	waitFor(t, "the primary to accept writes with its replica connected", func() bool {
		_, _, err := s.Enqueue(ctx, request(alice))
		return err == nil
	})
	if st, err := s.Stats(ctx, testQueue); err != nil || st.Made != 1 {
		t.Errorf("with the replica connected: %+v, %v; want the promise made", st, err)
	}
}
