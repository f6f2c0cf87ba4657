package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/redistest"
)

func TestAskedRemembersPromisesPerNumberUntilTheirTime(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	const anna, other = "+31201234501", "+31201234577"
	support := Ref{Queue: "support", ID: "01KAAAAAAAAAAAAAAAAAAAAAAA"}
	reception := Ref{Queue: "reception", ID: "01KBBBBBBBBBBBBBBBBBBBBBBB"}
	// Two daemons on one Redis: what one remembers, the other (or the first after a restart)
	// recalls.
	d1, d2 := NewAsked(rdb, "test"), NewAsked(rdb, "test")
	steps := []struct {
		name string
		do   func() error
		at   time.Time // recall time
		want map[string][]Ref
	}{
		{"a promise is remembered for its number only",
			func() error { return d1.Remember(ctx, anna, support, t0.Add(2*time.Hour), t0) },
			t0, map[string][]Ref{anna: {support}, other: nil}},
		{"a second promise of the same number, by the other daemon",
			func() error { return d2.Remember(ctx, anna, reception, t0.Add(time.Hour), t0) },
			t0.Add(time.Minute), map[string][]Ref{anna: {support, reception}}},
		{"an earlier time never shortens what is remembered",
			func() error { return d2.Remember(ctx, anna, support, t0.Add(time.Minute), t0) },
			t0.Add(90 * time.Minute), map[string][]Ref{anna: {support}}},
		{"forgotten once resolved",
			func() error { return d1.Forget(ctx, anna, support) },
			t0, map[string][]Ref{anna: {reception}}},
		{"past its time, nothing is recalled",
			func() error { return nil },
			t0.Add(3 * time.Hour), map[string][]Ref{anna: nil}},
		{"erase drops the number's key",
			func() error { return d1.Erase(ctx, anna) },
			t0, map[string][]Ref{anna: nil}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for number, want := range st.want {
			got, err := d2.Recall(ctx, number, st.at)
			if err != nil {
				t.Fatalf("%s: recall: %v", st.name, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s recalls %v, want %v", st.name, number, got, want)
			}
		}
	}
}

func TestAskedKeyLivesAsLongAsItsLatestEntry(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	ctx := context.Background()
	a := NewAsked(rdb, "test")
	// The TTL is real Redis time, so remember relative to the real clock of the server.
	now := time.UnixMilli(rdb.Time(ctx).Val().UnixMilli())
	if err := a.Remember(ctx, "+31201234501", Ref{Queue: "support", ID: "01KA"}, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if err := a.Remember(ctx, "+31201234501", Ref{Queue: "sales", ID: "01KB"}, now.Add(10*time.Minute), now); err != nil {
		t.Fatal(err)
	}
	key := "test:{asked:+31201234501}"
	ttl := rdb.PTTL(ctx, key).Val()
	if ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("%s expires in %v; want the latest entry's hour", key, ttl)
	}
	if err := a.Remember(ctx, "+31201234501", Ref{Queue: "support", ID: "01KC"}, now, now); err != nil {
		t.Fatal(err)
	}
	if n := rdb.HLen(ctx, key).Val(); n != 2 {
		t.Errorf("remembering something already over stored it: %d entries", n)
	}
}

func TestAskedRefusesWhatIsNotANumberOrAPromise(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		err  error
	}{
		{"bad number", NewAsked(rdb, "test").Remember(ctx, "0201234501", Ref{Queue: "support", ID: "x"}, now.Add(time.Hour), now)},
		{"no promise id", NewAsked(rdb, "test").Remember(ctx, "+31201234501", Ref{Queue: "support"}, now.Add(time.Hour), now)},
		{"bad queue", NewAsked(rdb, "test").Remember(ctx, "+31201234501", Ref{Queue: "a/b", ID: "x"}, now.Add(time.Hour), now)},
		{"bad prefix", NewAsked(rdb, "a b").Forget(ctx, "+31201234501", Ref{Queue: "support", ID: "x"})},
		{"recall of a bad number", func() error { _, err := NewAsked(rdb, "test").Recall(ctx, "1003", now); return err }()},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, ErrInvalid) {
			t.Errorf("%s: error %v; want one wrapping ErrInvalid", tc.name, tc.err)
		}
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Errorf("refused calls wrote %d keys", n)
	}
}
