package dialer

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/calendar"
)

var monday = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func minute(n int) time.Time { return monday.Add(time.Duration(n) * time.Minute) }

// daily is a calendar open in the same minute ranges every day, in UTC.
func daily(t *testing.T, rs ...calendar.Range) Hours {
	t.Helper()
	var o calendar.Options
	o.Location = time.UTC
	for d := range o.Week {
		o.Week[d] = rs
	}
	c, err := calendar.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestForecastPlansTheDispatchersDay(t *testing.T) {
	hours := daily(t, calendar.Range{From: 0, To: 60})
	tests := []struct {
		name string
		in   ForecastInput
		want map[string]int // predicted connect, minutes after monday; -1: none
	}{
		{"one agent takes them earliest deadline first", ForecastInput{Handle: 10 * time.Minute,
			Agents:   []ForecastAgent{{ID: "a"}},
			Promises: []ForecastPromise{{ID: "late", Deadline: minute(50)}, {ID: "soon", Deadline: minute(20)}}},
			map[string]int{"soon": 0, "late": 10}},
		{"a busy agent starts when free", ForecastInput{Handle: 10 * time.Minute,
			Agents:   []ForecastAgent{{ID: "a", FreeAt: minute(7)}},
			Promises: []ForecastPromise{{ID: "p", Deadline: minute(20)}}},
			map[string]int{"p": 7}},
		{"calling hours close: the rest waits for tomorrow", ForecastInput{Handle: 30 * time.Minute, Hours: hours,
			Agents:   []ForecastAgent{{ID: "a"}},
			Promises: []ForecastPromise{{ID: "1", Deadline: minute(10)}, {ID: "2", Deadline: minute(20)}, {ID: "3", Deadline: minute(30)}}},
			map[string]int{"1": 0, "2": 30, "3": 24 * 60}},
		{"an agent off shift comes in at its start", ForecastInput{Handle: 5 * time.Minute,
			Agents:   []ForecastAgent{{ID: "a", Shift: daily(t, calendar.Range{From: 15, To: 30})}},
			Promises: []ForecastPromise{{ID: "p", Deadline: minute(60)}}},
			map[string]int{"p": 15}},
		{"a held promise waits for its owner", ForecastInput{Handle: 10 * time.Minute,
			Agents: []ForecastAgent{{ID: "a", Extension: "1"}, {ID: "b", Extension: "2", FreeAt: minute(5)}},
			Promises: []ForecastPromise{{ID: "bobs", Deadline: minute(30), Owner: "2", HoldUntil: minute(15)},
				{ID: "other", Deadline: minute(40)}}},
			map[string]int{"other": 0, "bobs": 5}},
		{"nobody on the rota: no connect", ForecastInput{Handle: time.Minute,
			Promises: []ForecastPromise{{ID: "p", Deadline: minute(60)}}},
			map[string]int{"p": -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = monday
			got := map[string]int{}
			for _, p := range Forecast(tt.in) {
				got[p.ID] = -1
				if !p.Connect.IsZero() {
					got[p.ID] = int(p.Connect.Sub(monday) / time.Minute)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("connects %v, want %v", got, tt.want)
			}
		})
	}
}

// bruteForce plays the dispatcher minute by minute with one-minute callbacks: at every
// minute the calling hours are open, each free agent on shift, longest idle first, takes its
// own held promise or else the earliest-deadline due promise not held for another agent on
// shift. It is the specification the event-driven Forecast must match.
func bruteForce(in ForecastInput, minutes int) map[string]time.Time {
	ps := append([]ForecastPromise(nil), in.Promises...)
	sort.SliceStable(ps, func(i, j int) bool {
		if !ps[i].Deadline.Equal(ps[j].Deadline) {
			return ps[i].Deadline.Before(ps[j].Deadline)
		}
		return ps[i].ID < ps[j].ID
	})
	freeAt := make([]time.Time, len(in.Agents))
	for i, a := range in.Agents {
		freeAt[i] = a.FreeAt
		if freeAt[i].Before(in.Now) {
			freeAt[i] = in.Now
		}
	}
	onShift := func(a ForecastAgent, t time.Time) bool { return a.Shift == nil || a.Shift.Open(t) }
	done := map[string]time.Time{}
	for m := 0; m < minutes && len(done) < len(ps); m++ {
		t := in.Now.Add(time.Duration(m) * time.Minute)
		if in.Hours != nil && !in.Hours.Open(t) {
			continue
		}
		order := make([]int, len(in.Agents))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(x, y int) bool { return freeAt[order[x]].Before(freeAt[order[y]]) })
		for _, i := range order {
			a := in.Agents[i]
			if freeAt[i].After(t) || !onShift(a, t) {
				continue
			}
			pick := -1
			for k, p := range ps {
				if _, planned := done[p.ID]; planned || p.NotBefore.After(t) {
					continue
				}
				holding := p.Owner != "" && t.Before(p.HoldUntil)
				if holding && p.Owner == a.Extension {
					pick = k
					break
				}
				held := false
				for j, b := range in.Agents {
					if j != i && holding && b.Extension == p.Owner && onShift(b, t) {
						held = true
					}
				}
				if !held && pick < 0 {
					pick = k
				}
			}
			if pick >= 0 {
				done[ps[pick].ID] = t
				freeAt[i] = t.Add(time.Minute)
			}
		}
	}
	return done
}

func randomRanges(r *rand.Rand, span int) []calendar.Range {
	var out []calendar.Range
	for at := r.IntN(10); at < span; {
		length := 1 + r.IntN(20)
		out = append(out, calendar.Range{From: at, To: min(at+length, 24*60)})
		at += length + 1 + r.IntN(15)
	}
	return out
}

func TestForecastMatchesABruteForceScheduleForUnitHandleTimes(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 2026))
	for n := range 300 {
		in := ForecastInput{Now: monday, Handle: time.Minute}
		if r.IntN(2) == 0 {
			in.Hours = daily(t, randomRanges(r, 120)...)
		}
		for i := range 1 + r.IntN(3) {
			a := ForecastAgent{ID: fmt.Sprintf("a%d", i), Extension: fmt.Sprint(100 + i), FreeAt: minute(r.IntN(20))}
			if r.IntN(2) == 0 {
				a.Shift = daily(t, randomRanges(r, 120)...)
			}
			in.Agents = append(in.Agents, a)
		}
		for i := range 1 + r.IntN(8) {
			p := ForecastPromise{ID: fmt.Sprintf("p%d", i), NotBefore: minute(r.IntN(40)), Deadline: minute(r.IntN(90))}
			if r.IntN(3) == 0 {
				p.Owner = fmt.Sprint(100 + r.IntN(len(in.Agents)))
				p.HoldUntil = minute(r.IntN(60))
			}
			in.Promises = append(in.Promises, p)
		}
		const minutes = 3 * 24 * 60
		want := bruteForce(in, minutes)
		for _, p := range Forecast(in) {
			w, ok := want[p.ID]
			switch {
			case ok && !p.Connect.Equal(w):
				t.Fatalf("instance %d: %s predicted at %s, brute force %s\n%+v", n, p.ID, p.Connect, w, in)
			case !ok && !p.Connect.IsZero() && p.Connect.Before(monday.Add(minutes*time.Minute)):
				t.Fatalf("instance %d: %s predicted at %s, brute force never\n%+v", n, p.ID, p.Connect, in)
			}
		}
	}
}

func BenchmarkForecast200Promises10Agents(b *testing.B) {
	var o calendar.Options
	o.Location = time.UTC
	for d := time.Monday; d <= time.Friday; d++ {
		o.Week[d] = []calendar.Range{{From: 8*60 + 30, To: 17*60 + 30}}
	}
	hours, _ := calendar.New(o)
	in := ForecastInput{Now: monday.Add(9 * time.Hour), Hours: hours, Handle: 6 * time.Minute}
	for i := range 10 {
		in.Agents = append(in.Agents, ForecastAgent{ID: fmt.Sprint(i), Extension: fmt.Sprint(100 + i)})
	}
	for i := range 200 {
		in.Promises = append(in.Promises, ForecastPromise{ID: fmt.Sprint(i), Deadline: in.Now.Add(time.Duration(i) * 3 * time.Minute)})
	}
	for b.Loop() {
		Forecast(in)
	}
}
