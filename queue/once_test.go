package queue

import (
	"testing"
)

// A call's request (OncePerCall) is stored once: asked again by the same call — another
// daemon, or the same after a restart — it is a Duplicate that changes nothing, while what
// another call or another target asks is merged as before.
func TestEnqueueStoresACallsRequestOnce(t *testing.T) {
	f := newFixture(t)
	call := func(lid, number, target string) Request {
		r := request(number)
		r.Source.LinkedID, r.Target, r.OncePerCall = lid, target, true
		return r
	}
	steps := []struct {
		name               string
		req                Request
		merged, duplicate  bool
		wantMade, wantMrgd int64
	}{
		{"the call's first request makes the promise", call("1.1", alice, "201"), false, false, 1, 0},
		{"the same call again (a second daemon)", call("1.1", alice, "201"), false, true, 1, 0},
		{"the same call, another target: merged", call("1.1", alice, "202"), true, false, 1, 1},
		{"…and that one again: a duplicate too", call("1.1", alice, "202"), false, true, 1, 1},
		{"another call of the customer: merged", call("2.1", alice, "201"), true, false, 1, 2},
		{"the same linkedid on another Asterisk is another call", func() Request {
			r := call("1.1", bob, "201")
			r.Source.AsteriskID = "pbx2"
			return r
		}(), false, false, 2, 2},
		{"a request not of a call's end merges as before", func() Request {
			r := call("1.1", alice, "201")
			r.OncePerCall = false
			return r
		}(), true, false, 2, 3},
	}
	var first Job
	for i, s := range steps {
		before, err := f.s.Get(f.ctx, Ref{Queue: testQueue, ID: first.ID})
		if i > 0 && err != nil {
			t.Fatal(err)
		}
		j, res, err := f.s.Enqueue(f.ctx, s.req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if i == 0 {
			first = j
		}
		if res.Merged != s.merged || res.Duplicate != s.duplicate {
			t.Errorf("%s: merged=%v duplicate=%v; want %v %v", s.name, res.Merged, res.Duplicate, s.merged, s.duplicate)
		}
		if s.duplicate {
			after, _ := f.s.Get(f.ctx, first.Ref())
			if j.ID != first.ID || len(after.History) != len(before.History) {
				t.Errorf("%s: duplicate of %s changed its history (%d → %d entries); want promise %s untouched",
					s.name, j.ID, len(before.History), len(after.History), first.ID)
			}
		}
		st, err := f.s.Stats(f.ctx, testQueue)
		if err != nil {
			t.Fatal(err)
		}
		if st.Made != s.wantMade || st.Merged != s.wantMrgd {
			t.Errorf("%s: made %d merged %d; want %d %d", s.name, st.Made, st.Merged, s.wantMade, s.wantMrgd)
		}
	}

	// The promise gone (the customer's data erased): a duplicate still, named by its id.
	if _, err := f.s.EraseCustomer(f.ctx, alice); err != nil {
		t.Fatal(err)
	}
	j, res, err := f.s.Enqueue(f.ctx, call("1.1", alice, "201"))
	if err != nil || !res.Duplicate || j.ID != first.ID || j.Queue != testQueue {
		t.Errorf("after the erase: %+v %+v %v; want a duplicate naming %s", j.Ref(), res, err, first.ID)
	}
}
