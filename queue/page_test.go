package queue

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Paging visits every job once, earliest deadline first, ties by id, whatever the page size
// and whether jobs are due, waiting, leased or finished; equal deadlines (quotes are whole
// minutes) do not make a page repeat or skip one.
func TestPageVisitsEveryJobOnceInDeadlineOrder(t *testing.T) {
	f := newFixture(t)
	var made []Job
	for i := range 12 {
		r := request(fmt.Sprintf("+312012345%02d", i))
		r.Deadline = t0.Add(time.Duration(30+i/3) * time.Minute) // three per deadline
		if i%4 == 1 {
			r.NotBefore = t0.Add(10 * time.Minute) // waiting
		}
		made = append(made, f.enqueue(t, r))
	}
	// Ids made in one millisecond are not in creation order: the order is (deadline, id).
	sorted, _ := CutPage(append([]Job(nil), made...), PagePos{}, len(made))
	var want []string
	for _, j := range sorted {
		want = append(want, j.ID)
	}
	claimed := f.claim(t, ClaimOptions{}) // leased: the earliest due
	done := f.claim(t, ClaimOptions{})
	if _, err := f.s.Complete(f.ctx, done.Ref(), done.Lease.Token, StateUnreachable, "test"); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 5, 12, 50} {
		var got []string
		var after PagePos
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			cursor, err := ParsePagePos(after.String())
			if err != nil {
				t.Fatal(err)
			}
			jobs, next, err := f.s.Page(f.ctx, testQueue, PageOptions{Limit: limit, After: cursor})
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(jobs))
			}
			for _, j := range jobs {
				got = append(got, j.ID)
			}
			if next.ID == "" {
				break
			}
			after = next
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d: paged\n%v, want\n%v", limit, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		o    PageOptions
		want []string
	}{
		{"dialing only", PageOptions{States: []State{StateDialing}}, []string{claimed.ID}},
		{"finished only", PageOptions{States: []State{StateUnreachable, StateKept}}, []string{done.ID}},
		{"one customer", PageOptions{Number: "+31201234505"}, []string{made[5].ID}},
		{"one customer, another state", PageOptions{Number: "+31201234505", States: []State{StateKept}}, nil},
	} {
		jobs, next, err := f.s.Page(f.ctx, testQueue, tc.o)
		var got []string
		for _, j := range jobs {
			got = append(got, j.ID)
		}
		if err != nil || next.ID != "" || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v next %v (%v), want %v", tc.name, got, next, err, tc.want)
		}
	}
}

func TestPageRefusesWhatItCannotRead(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		o    PageOptions
	}{
		{"limit", PageOptions{Limit: 1001}},
		{"state", PageOptions{States: []State{"asleep"}}},
		{"number", PageOptions{Number: "call me"}},
	} {
		if _, _, err := f.s.Page(f.ctx, testQueue, tc.o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	for _, c := range []string{"x", "MTIzNA", "MTIzLm5vdC1hLXVsaWQ"} {
		if _, err := ParsePagePos(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("cursor %q: %v, want ErrInvalid", c, err)
		}
	}
}

// A pending promise takes its new window at once (due or waiting, by its not-before); one being
// dialled is its worker's and is refused; the deadline must stay within the max open age.
func TestRescheduleMovesAPendingPromise(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request(alice))
	nb, dl := t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	got, err := f.s.Reschedule(f.ctx, j.Ref(), Window{NotBefore: nb, Deadline: dl}, "customer asked for the afternoon")
	if err != nil {
		t.Fatal(err)
	}
	if !got.NotBefore.Equal(nb) || !got.Deadline.Equal(dl) || got.State != StatePending ||
		got.History[len(got.History)-1].Result != "rescheduled" {
		t.Errorf("rescheduled = %+v", got)
	}
	if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute}); !errors.Is(err, ErrEmpty) {
		t.Errorf("claim before the new not-before: %v, want ErrEmpty", err)
	}
	f.clk.Advance(2 * time.Hour)
	claimed := f.claim(t, ClaimOptions{})
	for _, tc := range []struct {
		name string
		ref  Ref
		w    Window
		want error
	}{
		{"being dialled", claimed.Ref(), Window{Deadline: t0.Add(4 * time.Hour)}, ErrWrongState},
		{"deadline passed", claimed.Ref(), Window{Deadline: t0.Add(time.Hour)}, ErrInvalid},
		{"not-before after the deadline", claimed.Ref(), Window{NotBefore: t0.Add(5 * time.Hour), Deadline: t0.Add(4 * time.Hour)}, ErrInvalid},
		{"beyond the max open age", claimed.Ref(), Window{Deadline: t0.Add(15 * 24 * time.Hour)}, ErrInvalid},
		{"no such promise", Ref{Queue: testQueue, ID: "01JZZZZZZZZZZZZZZZZZZZZZZZ"}, Window{Deadline: t0.Add(4 * time.Hour)}, ErrNotFound},
	} {
		if _, err := f.s.Reschedule(f.ctx, tc.ref, tc.w, ""); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIdempotencyKeyAnswersItsPromiseAndRefusesAnotherRequest(t *testing.T) {
	f := newFixture(t)
	keys := NewIdempotency(f.rdb, "")
	ref := Ref{Queue: testQueue, ID: "01JAAAAAAAAAAAAAAAAAAAAAAA"}
	steps := []struct {
		name, scope, key, print string
		ref                     Ref
		isNew                   bool
		err                     error
	}{
		{"first use", "crm", "k1", "a", Ref{}, true, nil},
		{"again while being served", "crm", "k1", "a", Ref{}, false, ErrIdempotencyConflict},
		{"another client's same key", "page", "k1", "b", Ref{}, true, nil},
	}
	for _, s := range steps {
		got, isNew, err := keys.Claim(f.ctx, s.scope, s.key, s.print, time.Hour)
		if got != s.ref || isNew != s.isNew || !errors.Is(err, s.err) {
			t.Errorf("%s: %v %v %v, want %v %v %v", s.name, got, isNew, err, s.ref, s.isNew, s.err)
		}
	}
	if err := keys.Done(f.ctx, "crm", "k1", ref); err != nil {
		t.Fatal(err)
	}
	if got, isNew, err := keys.Claim(f.ctx, "crm", "k1", "a", time.Hour); got != ref || isNew || err != nil {
		t.Errorf("replay: %v %v %v, want %v", got, isNew, err, ref)
	}
	if _, _, err := keys.Claim(f.ctx, "crm", "k1", "other body", time.Hour); !errors.Is(err, ErrIdempotencyConflict) {
		t.Errorf("another body: %v, want ErrIdempotencyConflict", err)
	}
	if err := keys.Forget(f.ctx, "page", "k1"); err != nil {
		t.Fatal(err)
	}
	if _, isNew, err := keys.Claim(f.ctx, "page", "k1", "c", time.Hour); !isNew || err != nil {
		t.Errorf("after Forget: new %v %v, want a new key", isNew, err)
	}
	ttl := f.rdb.PTTL(f.ctx, keys.key("crm", "k1")).Val()
	if ttl <= 0 || ttl > time.Hour {
		t.Errorf("the key's TTL is %v, want at most an hour", ttl)
	}
}
