package queue

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// types reads every event after c and returns their types (and the cursor past them).
func (f fixture) types(t *testing.T, c Cursor) ([]EventType, []Event, Cursor) {
	t.Helper()
	evs, next, err := f.s.ReadEvents(f.ctx, c, 1000, 0)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	var ts []EventType
	for _, e := range evs {
		ts = append(ts, e.Type)
	}
	return ts, evs, next
}

// Every step of a promise's life appears in its queue's event stream, in order, written by the
// script that makes the change: a reader never sees a change without its event.
func TestAPromisesLifeIsTheEventStream(t *testing.T) {
	f := newFixture(t)
	start, err := f.s.EventsNow(f.ctx)
	wantErr(t, err, nil)
	j := f.enqueue(t, request(alice))
	f.enqueue(t, request(alice)) // merged
	c := f.claim(t, ClaimOptions{Worker: "d1/201", Lease: time.Minute})
	wantErr(t, f.s.Emit(f.ctx, c.Ref(), EventAgentRung, map[string]string{"agent": "201"}), nil)
	_, err = f.s.Release(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now(), "agent did not answer")
	wantErr(t, err, nil)
	_, err = f.s.Release(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now(), "")
	wantErr(t, err, ErrStaleToken) // no event for a refused change
	c = f.claim(t, ClaimOptions{Worker: "d1/201", Lease: time.Minute})
	_, err = f.s.MarkDialled(f.ctx, c.Ref(), c.Lease.Token)
	wantErr(t, err, nil)
	_, err = f.s.MarkConnected(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now())
	wantErr(t, err, nil)
	_, err = f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateKept, "talked")
	wantErr(t, err, nil)

	got, evs, _ := f.types(t, start)
	want := []EventType{EventMade, EventMerged, EventClaimed, EventAgentRung, EventReleased,
		EventClaimed, EventCustomerDialled, EventConnected, EventKept}
	if !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for _, e := range evs {
		if e.Promise != j.ID || e.Queue != testQueue || e.Number != alice || !e.At.Equal(f.clk.Now()) {
			t.Errorf("event %+v: want promise %s of %s, number %s, at %v", e, j.ID, testQueue, alice, f.clk.Now())
		}
	}
	if evs[2].Data["agent"] != "d1/201" || evs[3].Data["agent"] != "201" {
		t.Errorf("claimed/agent_rung data = %v / %v, want the worker and the agent", evs[2].Data, evs[3].Data)
	}
	if evs[6].Data["attempts"] != "1" {
		t.Errorf("customer_dialled attempts = %q, want 1 (the attempt it is)", evs[6].Data["attempts"])
	}
	if evs[0].Data["deadline"] == "" || evs[0].Data["reason"] != string(ReasonVoicemail) {
		t.Errorf("made data = %v, want its deadline and reason", evs[0].Data)
	}
	for _, e := range evs {
		for k, v := range e.Data {
			if v == "" {
				t.Errorf("%s event data names %s without a value; an empty field is an absent one", e.Type, k)
			}
		}
	}
}

// Every entry of the event stream has the same fields in the same order, empty where the event
// has no value: Redis keeps the field names of a stream node once, with its first entry, for
// every entry whose fields are the same, so interleaved events of many promises do not each
// carry their names. A field outside the layout follows it on the entry that has it.
func TestEveryEventHasTheSameFieldsInTheSameOrder(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request(alice))
	f.enqueue(t, request(alice)) // merged
	c := f.claim(t, ClaimOptions{Worker: "d1/201", Lease: time.Minute})
	wantErr(t, f.s.Emit(f.ctx, c.Ref(), EventAgentRung, map[string]string{"agent": "201"}), nil)
	_, err := f.s.MarkDialled(f.ctx, c.Ref(), c.Lease.Token)
	wantErr(t, err, nil)
	_, err = f.s.Retry(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now(), "busy")
	wantErr(t, err, nil)
	c = f.claim(t, ClaimOptions{Worker: "d1/201", Lease: time.Minute})
	wantErr(t, f.s.Emit(f.ctx, c.Ref(), EventAtRisk, map[string]string{"deadline": "1", "forecast": "late"}), nil)
	_, err = f.s.MarkDialled(f.ctx, c.Ref(), c.Lease.Token)
	wantErr(t, err, nil)
	_, err = f.s.MarkConnected(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now())
	wantErr(t, err, nil)
	_, err = f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateKept, "talked")
	wantErr(t, err, nil)

	raw, err := f.rdb.Do(f.ctx, "XRANGE", f.s.EventStreamKey(testQueue), "-", "+").Slice()
	wantErr(t, err, nil)
	if len(raw) != 11 {
		t.Fatalf("%d events of %s's life; want 11", len(raw), j.ID)
	}
	// emit in common.lua writes this layout; ParseEvent needs none of it, reading an empty
	// field as an absent one.
	layout := []string{"type", "promise", "number", "at",
		"agent", "attempts", "reason", "reasons", "target", "deadline", "not_before", "detail"}
	for _, entry := range raw {
		pair, _ := entry.([]any)
		flat, _ := pair[1].([]any)
		var names []string
		for i := 0; i < len(flat); i += 2 {
			name, _ := flat[i].(string)
			names = append(names, name)
		}
		want := layout
		if flat[1] == string(EventAtRisk) {
			want = append(slices.Clone(layout), "forecast")
		}
		if !slices.Equal(names, want) {
			t.Errorf("a %v event's fields are %v; want %v", flat[1], names, want)
		}
	}
	evs, _, err := f.s.ReadEvents(f.ctx, nil, 100, 0)
	wantErr(t, err, nil)
	if risk := evs[7]; risk.Type != EventAtRisk || risk.Data["forecast"] != "late" || risk.Data["deadline"] != "1" || len(risk.Data) != 2 {
		t.Errorf("the at-risk event reads back as %+v; want its deadline and forecast, and nothing else", risk)
	}
}

// The release of a promise whose agent never answered is "released", not "retry": no attempt
// was used. So is a lease that expired before the customer was dialled; one that expired
// after is a retry, and each final state has its own event.
func TestEventsNameHowAPromiseWasGivenBackOrEnded(t *testing.T) {
	f := newFixture(t)
	start, _ := f.s.EventsNow(f.ctx)
	j := f.enqueue(t, request(alice))
	c := f.claim(t, ClaimOptions{Worker: "w", Lease: time.Second})
	_, err := f.s.Release(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now(), "agent busy")
	wantErr(t, err, nil)
	f.claim(t, ClaimOptions{Worker: "w", Lease: time.Second})
	f.clk.Advance(2 * time.Second)
	_, err = f.s.Reclaim(f.ctx, testQueue)
	wantErr(t, err, nil)
	c = f.claim(t, ClaimOptions{Worker: "w", Lease: time.Second})
	_, err = f.s.MarkDialled(f.ctx, c.Ref(), c.Lease.Token)
	wantErr(t, err, nil)
	f.clk.Advance(2 * time.Second)
	_, err = f.s.Reclaim(f.ctx, testQueue)
	wantErr(t, err, nil)
	_, err = f.s.Cancel(f.ctx, j.Ref(), "by a supervisor")
	wantErr(t, err, nil)
	other := f.enqueue(t, request(bob))
	_, err = f.s.Resolve(f.ctx, testQueue, bob, "called in")
	wantErr(t, err, nil)

	got, evs, _ := f.types(t, start)
	want := []EventType{EventMade, EventClaimed, EventReleased, EventClaimed, EventReleased,
		EventClaimed, EventCustomerDialled, EventRetry, EventCancelled, EventMade, EventResolved}
	if !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if evs[10].Promise != other.ID || evs[8].Data["detail"] != "by a supervisor" {
		t.Errorf("resolved/cancelled events = %+v / %+v", evs[10], evs[8])
	}
}

// A reader resumes where it stopped, with the cursor of the last event it saw, across queues,
// and a cursor written out and read back is the same position.
func TestReadEventsResumesFromACursorAcrossQueues(t *testing.T) {
	f := newFixture(t)
	start, err := f.s.EventsNow(f.ctx)
	wantErr(t, err, nil)
	a := f.enqueue(t, request(alice))
	r := request(bob)
	r.Queue = otherQ
	b := f.enqueue(t, r)
	evs, next, err := f.s.ReadEvents(f.ctx, start, 1, 0)
	wantErr(t, err, nil)
	if len(evs) == 0 {
		t.Fatal("no event read")
	}
	back, err := ParseCursor(next.String())
	wantErr(t, err, nil)
	_, rest, _ := f.types(t, back)
	seen := append(evs, rest...)
	var ids []string
	for _, e := range seen {
		ids = append(ids, e.Promise)
	}
	slices.Sort(ids)
	want := []string{a.ID, b.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("read promises %v across two reads, want each of %v once", ids, want)
	}
	// An empty cursor reads everything retained; one from now, nothing yet.
	all, _, _ := f.types(t, Cursor{})
	if len(all) != 2 {
		t.Errorf("from the start: %v, want both events", all)
	}
	now, _ := f.s.EventsNow(f.ctx)
	if got, _, _ := f.types(t, now); len(got) != 0 {
		t.Errorf("from now: %v, want none", got)
	}
}

// A blocked reader wakes for the next event; one whose context ends returns at once.
func TestReadEventsWaitsForTheNextEvent(t *testing.T) {
	f := newFixture(t)
	now, _ := f.s.EventsNow(f.ctx)
	got := make(chan []Event, 1)
	go func() {
		evs, _, err := f.s.ReadEvents(f.ctx, now, 10, time.Minute)
		if err != nil {
			t.Errorf("ReadEvents: %v", err)
		}
		got <- evs
	}()
	// The reader may block before or after this enqueue; either way it returns the event.
	j := f.enqueue(t, request(alice))
	if evs := <-got; len(evs) != 1 || evs[0].Promise != j.ID {
		t.Errorf("woke with %+v, want the made event of %s", evs, j.ID)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	now, _ = f.s.EventsNow(f.ctx)
	if _, _, err := f.s.ReadEvents(ctx, now, 10, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadEvents with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestParseCursorNamesWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sales=1-0,support=2-3", ""},
		{"", ""},
		{"sales", `"sales" is not queue=id`},
		{"sales=abc", `"abc" is not a stream id`},
		{"sales=1-0,sales=2-0", "names queue sales twice"},
		{"bad queue=1-0", "queue"},
	} {
		c, err := ParseCursor(tc.in)
		if tc.want == "" {
			if err != nil || c.String() != tc.in {
				t.Errorf("ParseCursor(%q) = %v, %v; want it back unchanged", tc.in, c, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCursor(%q) error = %v, want ErrInvalid naming %q", tc.in, err, tc.want)
		}
	}
}

// Bad input to the readers and to Emit is refused and writes nothing.
func TestEventInputIsChecked(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request(alice))
	before := f.snapshot(t)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"a transition's event", f.s.Emit(f.ctx, j.Ref(), EventKept, nil)},
		{"an unknown type", f.s.Emit(f.ctx, j.Ref(), EventType("bogus"), nil)},
		{"a field the store sets", f.s.Emit(f.ctx, j.Ref(), EventAtRisk, map[string]string{"number": "+31"})},
		{"an unreadable value", f.s.Emit(f.ctx, j.Ref(), EventAtRisk, map[string]string{"detail": "a\nb"})},
		{"an unknown queue", f.s.Emit(f.ctx, Ref{Queue: "nope", ID: j.ID}, EventAtRisk, nil)},
	} {
		if !errors.Is(tc.err, ErrInvalid) && !errors.Is(tc.err, ErrUnknownQueue) {
			t.Errorf("Emit with %s = %v, want it refused", tc.name, tc.err)
		}
	}
	gone, err := newID(f.clk.Now())
	wantErr(t, err, nil)
	wantErr(t, f.s.Emit(f.ctx, Ref{Queue: testQueue, ID: gone}, EventAtRisk, nil), ErrNotFound)
	f.assertUnchanged(t, before)
	if _, _, err := f.s.ReadEvents(f.ctx, Cursor{"nope": "0-0"}, 10, 0); err == nil {
		t.Error("ReadEvents with a cursor naming an unknown queue succeeded")
	}
	if _, _, err := f.s.ReadEvents(f.ctx, Cursor{}, 0, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReadEvents with count 0 = %v, want ErrInvalid", err)
	}
}

// An entry someone wrote by hand that is not an event is skipped and reported; the reader's
// cursor moves past it, so it does not stop every later read.
func TestABrokenEventEntryIsSkippedNotFatal(t *testing.T) {
	f := newFixture(t)
	now, _ := f.s.EventsNow(f.ctx)
	f.rdb.XAdd(f.ctx, &redis.XAddArgs{Stream: f.s.EventStreamKey(testQueue), Values: []any{"type", "exploded"}})
	j := f.enqueue(t, request(alice))
	evs, next, err := f.s.ReadEvents(f.ctx, now, 10, 0)
	if err == nil || !strings.Contains(err.Error(), `unknown event type "exploded"`) {
		t.Errorf("error = %v, want the bad entry named", err)
	}
	if len(evs) != 1 || evs[0].Promise != j.ID {
		t.Errorf("events = %+v, want the good one", evs)
	}
	if got, _, _ := f.types(t, next); len(got) != 0 {
		t.Errorf("after the cursor: %v, want nothing (the bad entry was passed)", got)
	}
}

// Erasing a customer deletes their event entries, and export shows them first.
func TestEraseDeletesTheCustomersEvents(t *testing.T) {
	f := newFixture(t)
	f.enqueue(t, request(alice))
	keep := f.enqueue(t, request(bob))
	rec, err := f.s.ExportCustomer(f.ctx, alice)
	wantErr(t, err, nil)
	if n := len(rec.Queues[0].Events); n != 1 {
		t.Errorf("export lists %d events, want 1", n)
	}
	er, err := f.s.EraseCustomer(f.ctx, alice)
	wantErr(t, err, nil)
	if er.Queues[0].Events != 1 {
		t.Errorf("erase deleted %d events, want 1", er.Queues[0].Events)
	}
	got, evs, _ := f.types(t, Cursor{})
	if len(got) != 1 || evs[0].Promise != keep.ID {
		t.Errorf("left %+v, want only the other customer's event", evs)
	}
}

// Events of two queues interleave by time, but each queue's stay in stream order even when a
// daemon's clock was behind: a reader advancing its cursor event by event never steps back.
func TestMergeByTimeKeepsEachQueuesOrder(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	a := []Event{{ID: "a/1-0", At: at(1)}, {ID: "a/2-0", At: at(0)}, {ID: "a/3-0", At: at(5)}} // a/2 from a slow clock
	b := []Event{{ID: "b/1-0", At: at(2)}, {ID: "b/2-0", At: at(4)}}
	var got []string
	for _, e := range mergeByTime([][]Event{a, b}) {
		got = append(got, e.ID)
	}
	want := []string{"a/1-0", "a/2-0", "b/1-0", "b/2-0", "a/3-0"}
	if !slices.Equal(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
}

// The detector's record of a call in progress holds the caller's number: export shows it and
// erase deletes it (and its index entry), leaving other callers' calls alone.
func TestEraseDeletesTheRecordsOfTheCustomersCallsInProgress(t *testing.T) {
	f := newFixture(t)
	m := newCallMemory(t, f.rdb, f.clk, time.Hour)
	m.Keep(testAsterisk, "7.1", []byte(`{"customer":{"number":"`+alice+`","name":"Alice"}}`))
	m.Keep(testAsterisk, "7.2", []byte(`{"customer":{"number":"`+bob+`"}}`))
	wantErr(t, m.Flush(f.ctx), nil)
	rec, err := f.s.ExportCustomer(f.ctx, alice)
	wantErr(t, err, nil)
	if len(rec.Calls) != 1 || !strings.Contains(rec.Calls[0].Value, alice) {
		t.Errorf("export lists calls %+v, want alice's one", rec.Calls)
	}
	er, err := f.s.EraseCustomer(f.ctx, alice)
	wantErr(t, err, nil)
	if len(er.Calls) != 1 {
		t.Errorf("erase deleted calls %v, want alice's one", er.Calls)
	}
	left := keptCalls(t, m)
	if len(left) != 1 || left[testAsterisk+" 7.2"] == "" {
		t.Errorf("calls left %v, want only bob's", left)
	}
}

// An event shown to whoever may not see numbers masks the customer's number and any number
// its optional fields quote, and leaves the event it was made from as it was.
func TestAMaskedEventNamesNoNumber(t *testing.T) {
	e := Event{ID: "support/1-0", Type: EventRetry, Promise: "p1", Number: "+31201234501",
		Data: map[string]string{"detail": "dialling PJSIP/+31201234501@provider failed", "attempts": "2"}}
	m := e.Masked()
	for _, v := range append([]string{m.Number}, m.Data["detail"], m.Data["attempts"]) {
		if strings.Contains(v, "1234501") {
			t.Errorf("masked event still shows the number: %q", v)
		}
	}
	if m.Data["attempts"] != "2" || m.Promise != "p1" {
		t.Errorf("masked event lost its fields: %+v", m)
	}
	if e.Number != "+31201234501" || !strings.Contains(e.Data["detail"], "+31201234501") {
		t.Errorf("masking changed the original event: %+v", e)
	}
}

// An entry that lacks a field every event has, or holds garbage in one, is skipped and named
// like any other broken entry, with any number it quotes masked (the error is logged), and
// the events around it are still read.
func TestAnEventEntryWithAMissingOrBrokenFieldIsSkippedAndNamed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []any
		want   string
	}{
		{"no time", []any{"type", "made", "promise", "01JAAAAAAAAAAAAAAAAAAAAAAA", "number", alice}, "field at"},
		{"a time that is not a number", []any{"type", "made", "promise", "01JAAAAAAAAAAAAAAAAAAAAAAA", "at", "+31201234599x"}, "field at"},
		{"a type that is a number", []any{"type", "+31201234599", "promise", "01JAAAAAAAAAAAAAAAAAAAAAAA", "at", "1"}, "unknown event type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			now, _ := f.s.EventsNow(f.ctx)
			f.rdb.XAdd(f.ctx, &redis.XAddArgs{Stream: f.s.EventStreamKey(testQueue), Values: tc.values})
			j := f.enqueue(t, request(bob))
			evs, next, err := f.s.ReadEvents(f.ctx, now, 10, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "1234599") {
				t.Errorf("error = %v; want the bad entry named (%q), numbers masked", err, tc.want)
			}
			if len(evs) != 1 || evs[0].Promise != j.ID {
				t.Errorf("events = %+v, want the good one", evs)
			}
			if got, _, _ := f.types(t, next); len(got) != 0 {
				t.Errorf("after the cursor: %v, want nothing (the bad entry was passed)", got)
			}
		})
	}
}
