package queue

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// results lists a history's results in order.
func results(h []Attempt) string {
	var out []string
	for _, a := range h {
		out = append(out, a.Result)
	}
	return strings.Join(out, ",")
}

func TestHistoryLivesInTheJobHash(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request("+31612345678"))
	c := f.claim(t, ClaimOptions{})
	f.clk.Advance(time.Second)
	if _, err := f.s.MarkConnected(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateKept, "talked"); err != nil {
		t.Fatal(err)
	}
	got := f.get(t, j.Ref())
	if want := "claimed,connected,kept"; results(got.History) != want {
		t.Errorf("history %q, want %q", results(got.History), want)
	}
	if last := got.History[len(got.History)-1]; last.Detail != "talked" || !last.At.Equal(f.clk.Now().UTC().Truncate(time.Millisecond)) {
		t.Errorf("last entry %+v, want kept at %v with detail talked", last, f.clk.Now())
	}
	k := f.s.ks(testQueue)
	if n := f.rdb.Exists(f.ctx, k.history(j.ID)).Val(); n != 0 {
		t.Errorf("a new promise has a history key of its own")
	}
	if enc := f.rdb.ObjectEncoding(f.ctx, k.job(j.ID)).Val(); enc != "listpack" {
		t.Errorf("finished job hash encoded as %s, want listpack", enc)
	}
}

// Claim answers the job without its history (the claimer does not read it) and with the lease
// it just wrote, even when the hash already held an older lease's fields and entries.
func TestClaimAnswersTheNewLeaseWithoutHistory(t *testing.T) {
	f := newFixture(t)
	f.enqueue(t, request("+31612345678"))
	first := f.claim(t, ClaimOptions{Worker: "w1"})
	if _, err := f.s.Release(f.ctx, first.Ref(), first.Lease.Token, time.Time{}, "agent did not answer"); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Second)
	c := f.claim(t, ClaimOptions{Worker: "w2"})
	if c.History != nil {
		t.Errorf("Claim answered a history %+v", c.History)
	}
	stored := f.get(t, c.Ref())
	if c.State != StateDialing || c.Lease != stored.Lease || c.Lease.Worker != "w2" || c.Lease.Token <= first.Lease.Token {
		t.Errorf("Claim answered state %s lease %+v; stored lease %+v, the first claim's token %d",
			c.State, c.Lease, stored.Lease, first.Lease.Token)
	}
	stored.History = nil
	if !reflect.DeepEqual(*c, stored) {
		t.Errorf("Claim answered\n%+v\nGet reads\n%+v", *c, stored)
	}
}

// A job made before the history moved into the hash (no hn field, its entries in a list of its
// own) goes on writing to its list, and reads show the list then nothing lost or reordered.
func TestHistoryOfAJobMadeBeforeTheHashHeldIt(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request("+31612345678"))
	k := f.s.ks(testQueue)
	if err := f.rdb.HDel(f.ctx, k.job(j.ID), "hn").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.RPush(f.ctx, k.history(j.ID), `[1700000000000,"merged","reason=voicemail"]`).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Expire(f.ctx, k.history(j.ID), 10000*time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	c := f.claim(t, ClaimOptions{})
	if _, err := f.s.MarkConnected(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateKept, "talked"); err != nil {
		t.Fatal(err)
	}
	got := f.get(t, j.Ref())
	if want := "merged,claimed,connected,kept"; results(got.History) != want {
		t.Errorf("history %q, want %q", results(got.History), want)
	}
	if fields := f.rdb.HKeys(f.ctx, k.job(j.ID)).Val(); strings.Contains(strings.Join(fields, " "), "h:") {
		t.Errorf("an old job's hash got history fields: %v", fields)
	}
	if ttl := f.rdb.PTTL(f.ctx, k.history(j.ID)).Val(); ttl <= 0 || ttl > DefaultRetention {
		t.Errorf("the old job's history list expires in %v, want within the retention %v", ttl, DefaultRetention)
	}
}

// Enqueue builds the new promise's Job from its request instead of reading it back; it must be
// exactly what Get reads from Redis, whatever the request carries.
func TestEnqueueAnswersWhatGetReads(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Request)
	}{
		{"a plain request", func(*Request) {}},
		{"no target, name, source or note", func(r *Request) {
			r.Target, r.Name, r.Source, r.Note = "", "", Source{}, ""
		}},
		{"later not-before, off-millisecond times", func(r *Request) {
			r.NotBefore = t0.Add(10*time.Minute + 1234567*time.Nanosecond)
			r.Deadline = t0.Add(time.Hour + 7654321*time.Nanosecond)
		}},
		{"business-time hold, at risk, external ref, a note", func(r *Request) {
			r.HoldUntil, r.AtRiskFromStart, r.ExternalRef, r.Note = t0.Add(30*time.Minute), true, "CRM-17", "call after lunch"
		}},
		{"a number written for people", func(r *Request) { r.Number = "+31 6 1234 5678" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.clk.Set(t0.Add(987654 * time.Nanosecond))
			r := request("+31612345678")
			tt.change(&r)
			j, res, err := f.s.Enqueue(f.ctx, r)
			if err != nil || res.Merged || res.Duplicate {
				t.Fatalf("Enqueue: %+v %v", res, err)
			}
			if got := f.get(t, j.Ref()); !reflect.DeepEqual(got, j) {
				t.Errorf("Enqueue answered\n%+v\nGet reads\n%+v", j, got)
			}
		})
	}
}

func TestHistoryFieldReadsBack(t *testing.T) {
	at := time.UnixMilli(1700000000123).UTC()
	tests := []struct {
		field   string
		want    Attempt
		wantErr bool
	}{
		{"1700000000123|claimed", Attempt{At: at, Result: "claimed"}, false},
		{"1700000000123|kept|talked", Attempt{At: at, Result: "kept", Detail: "talked"}, false},
		{"1700000000123|failed|a detail | with bars|and more", Attempt{At: at, Result: "failed", Detail: "a detail | with bars|and more"}, false},
		{"claimed", Attempt{}, true},
		{"soon|claimed", Attempt{}, true},
		{"1700000000123|", Attempt{}, true},
	}
	for _, tt := range tests {
		got, err := decodeHistoryField(tt.field)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("decodeHistoryField(%q) = %+v, %v; want %+v, error %v", tt.field, got, err, tt.want, tt.wantErr)
		}
	}
}

// A detail with the separator in it comes back whole through the store.
func TestHistoryDetailWithBars(t *testing.T) {
	f := newFixture(t)
	f.enqueue(t, request("+31612345678"))
	c := f.claim(t, ClaimOptions{})
	const detail = "SIP 486 | busy here | retry later"
	if _, err := f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateFailed, detail); err != nil {
		t.Fatal(err)
	}
	h := f.get(t, c.Ref()).History
	if last := h[len(h)-1]; last.Result != string(StateFailed) || last.Detail != detail {
		t.Errorf("last entry %+v, want failed with detail %q", last, detail)
	}
}

// A finished job keeps its outcome once, as its final state; a job an earlier version finished,
// which has an outcome field too, reads the same.
func TestTheOutcomeIsTheFinalStateAndHasNoFieldOfItsOwn(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request("+31612345678"))
	c := f.claim(t, ClaimOptions{})
	if _, err := f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateUnreachable, "no answer"); err != nil {
		t.Fatal(err)
	}
	jk := f.s.ks(testQueue).job(j.ID)
	if f.rdb.HExists(f.ctx, jk, "outcome").Val() {
		t.Errorf("the finished job hash has an outcome field beside its state")
	}
	if got := f.get(t, j.Ref()); got.State != StateUnreachable || got.Outcome != StateUnreachable {
		t.Errorf("read back: state %s outcome %s, want both unreachable", got.State, got.Outcome)
	}
	f.rdb.HSet(f.ctx, jk, "outcome", string(StateUnreachable))
	if got := f.get(t, j.Ref()); got.Outcome != StateUnreachable {
		t.Errorf("with an earlier version's outcome field: outcome %s, want unreachable", got.Outcome)
	}
	open := f.enqueue(t, request("+31612345679"))
	if got := f.get(t, open.Ref()); got.Outcome != "" {
		t.Errorf("an open promise reads outcome %q, want none", got.Outcome)
	}
}

// A first claim writes no connect time (there is none to clear), while a claim after a release
// clears the one the earlier claim left; either way the claimed job reads as not connected.
func TestAClaimLeavesNoConnectTimeBehind(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request("+31612345678"))
	jk := f.s.ks(testQueue).job(j.ID)
	c := f.claim(t, ClaimOptions{})
	if f.rdb.HExists(f.ctx, jk, "connected").Val() {
		t.Errorf("a first claim wrote a connected field")
	}
	if got := f.get(t, j.Ref()); !got.ConnectedAt.IsZero() || got.State != StateDialing {
		t.Errorf("after the first claim: %s connected at %v, want dialing and not connected", got.State, got.ConnectedAt)
	}
	// A claim after the first clears any connect time the hash holds, whatever left it there
	// (release clears it already; this one is written by hand).
	if _, err := f.s.Release(f.ctx, c.Ref(), c.Lease.Token, time.Time{}, "agent busy"); err != nil {
		t.Fatal(err)
	}
	f.rdb.HSet(f.ctx, jk, "connected", "1700000000000")
	again := f.claim(t, ClaimOptions{})
	if v := f.rdb.HGet(f.ctx, jk, "connected").Val(); v != "0" || !again.ConnectedAt.IsZero() {
		t.Errorf("after a claim following a release: connected field %q, reply connected %v; want 0 and none", v, again.ConnectedAt)
	}
}

// The scripts parse now once per value (now_ms in common.lua), and a function library keeps
// the last one between calls: each call must still compute with its own now, whether it is
// the last call's or not.
func TestEveryCallComputesWithItsOwnNow(t *testing.T) {
	f := newFixture(t)
	f.enqueue(t, request("+31612345678"))
	c := f.claim(t, ClaimOptions{Lease: time.Minute})
	for _, step := range []time.Duration{0, 0, time.Second, 0, 17 * time.Millisecond, time.Hour} {
		f.clk.Advance(step)
		j, err := f.s.Extend(f.ctx, c.Ref(), c.Lease.Token, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.clk.Now().Add(2 * time.Minute).UTC().Truncate(time.Millisecond); !j.Lease.Expires.Equal(want) {
			t.Fatalf("after %v more: lease expires %v, want %v", step, j.Lease.Expires, want)
		}
	}
}
