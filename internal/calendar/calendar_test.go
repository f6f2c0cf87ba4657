package calendar

import (
	"testing"
	"time"
)

func ams(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// officeWeek is Monday to Friday with the given ranges.
func officeWeek(rs ...Range) [7][]Range {
	var w [7][]Range
	for d := time.Monday; d <= time.Friday; d++ {
		w[d] = rs
	}
	return w
}

func hm(h, m int) int { return h*60 + m }

func TestCalendarAddCountsOnlyOpenTime(t *testing.T) {
	loc := ams(t)
	at := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, loc) }
	nl, _ := CountryHolidays("NL")
	day := officeWeek(Range{hm(8, 30), hm(17, 30)})
	split := officeWeek(Range{hm(8, 30), hm(12, 0)}, Range{hm(13, 0), hm(17, 30)})
	var nights [7][]Range
	nights[time.Sunday] = []Range{{0, hm(6, 0)}}
	// Sunday 29 March 2026 the clocks jump from 02:00 to 03:00: 02:00-02:59 never happens.
	var intoGap, fromGap [7][]Range
	intoGap[time.Sunday] = []Range{{0, hm(2, 30)}}
	fromGap[time.Sunday] = []Range{{hm(2, 30), hm(3, 15)}}
	tests := []struct {
		name string
		opts Options
		from time.Time
		add  time.Duration
		want time.Time
	}{
		{"inside one day", Options{Week: day}, at(11, 23, 10, 0), 4 * time.Hour, at(11, 23, 14, 0)},
		{"an evening voicemail lands in the next morning", Options{Week: day}, at(11, 23, 16, 0), 4 * time.Hour, at(11, 24, 11, 0)},
		{"made while closed, counting starts at the opening", Options{Week: day}, at(11, 23, 20, 0), 2 * time.Hour, at(11, 24, 10, 30)},
		{"friday evening to monday (the weekend is closed)", Options{Week: day}, at(11, 27, 18, 0), 4 * time.Hour, at(11, 30, 12, 30)},
		{"friday afternoon runs over the weekend", Options{Week: day}, at(11, 27, 16, 30), 2 * time.Hour, at(11, 30, 9, 30)},
		{"several ranges a day skip the lunch break", Options{Week: split}, at(11, 23, 11, 0), 2 * time.Hour, at(11, 23, 14, 0)},
		{"a deadline may end exactly at closing", Options{Week: day}, at(11, 23, 13, 30), 4 * time.Hour, at(11, 23, 17, 30)},
		{"a closure across midnight", Options{Week: func() [7][]Range {
			var w [7][]Range
			for d := range w {
				w[d] = []Range{{0, 24 * 60}}
			}
			return w
		}(), Closures: []Closure{{at(12, 31, 18, 0), at(1, 1, 0, 0).AddDate(1, 0, 0).Add(10 * time.Hour)}}},
			at(12, 31, 17, 0), 2 * time.Hour, time.Date(2027, 1, 1, 11, 0, 0, 0, loc)},
		{"a closed date", Options{Week: day, Closures: []Closure{{at(11, 24, 0, 0), at(11, 25, 0, 0)}}},
			at(11, 23, 16, 30), 2 * time.Hour, at(11, 25, 9, 30)},
		{"christmas is a public holiday", Options{Week: day, Holidays: nl}, at(12, 24, 16, 30), 2 * time.Hour, at(12, 28, 9, 30)},
		{"king's day 2026 is a monday", Options{Week: day, Holidays: nl}, at(4, 24, 17, 0), 1 * time.Hour, at(4, 28, 9, 0)},
		{"an override opens a holiday", Options{Week: day, Holidays: nl, Overrides: map[Date][]Range{{2026, 12, 26}: {{hm(10, 0), hm(12, 0)}}}},
			at(12, 24, 16, 30), 2 * time.Hour, at(12, 26, 11, 0)},
		{"DST spring forward: friday 16:30 + 2h is monday 09:30 summer time", Options{Week: day}, at(3, 27, 16, 30), 2 * time.Hour, at(3, 30, 9, 30)},
		{"DST spring forward shortens a night opening to 5 hours", Options{Week: nights}, at(3, 29, 0, 0), 5 * time.Hour, at(3, 29, 6, 0)},
		{"DST fall back lengthens it to 7 hours", Options{Week: nights}, at(10, 25, 0, 0), 6 * time.Hour, at(10, 25, 5, 0)},
		{"DST spring forward: an opening ending in the skipped hour closes at 03:00 summer time", Options{Week: intoGap},
			at(3, 29, 0, 0), 2*time.Hour + 30*time.Minute, at(4, 5, 0, 30)},
		{"DST spring forward: an opening starting in the skipped hour opens at 03:00 summer time", Options{Week: fromGap},
			at(3, 29, 0, 0), 10 * time.Minute, at(3, 29, 3, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Location = loc
			c, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Add(tt.from, tt.add)
			if !got.Equal(tt.want) {
				t.Fatalf("Add(%s, %s) = %s, want %s", tt.from, tt.add, got.In(loc), tt.want)
			}
			if back := c.Between(tt.from, got); back != tt.add {
				t.Fatalf("Between(%s, %s) = %s, want %s", tt.from, got.In(loc), back, tt.add)
			}
		})
	}
}

func TestCalendarOpenNextOpeningAndClosing(t *testing.T) {
	loc := ams(t)
	at := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, loc) }
	c, err := New(Options{Location: loc, Week: officeWeek(Range{hm(8, 30), hm(12, 0)}, Range{hm(13, 0), hm(17, 30)})})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                  string
		t                     time.Time
		open                  bool
		nextOpening, nextShut time.Time
	}{
		{"before opening", at(11, 23, 8, 29), false, at(11, 23, 8, 30), at(11, 23, 12, 0)},
		{"the opening minute is open", at(11, 23, 8, 30), true, at(11, 23, 8, 30), at(11, 23, 12, 0)},
		{"lunch is closed", at(11, 23, 12, 0), false, at(11, 23, 13, 0), at(11, 23, 17, 30)},
		{"the closing minute is closed", at(11, 23, 17, 30), false, at(11, 24, 8, 30), at(11, 24, 12, 0)},
		{"saturday", at(11, 28, 10, 0), false, at(11, 30, 8, 30), at(11, 30, 12, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Open(tt.t); got != tt.open {
				t.Errorf("Open = %v, want %v", got, tt.open)
			}
			if got := c.NextOpening(tt.t); !got.Equal(tt.nextOpening) {
				t.Errorf("NextOpening = %s, want %s", got.In(loc), tt.nextOpening)
			}
			if got := c.NextClosing(tt.t); !got.Equal(tt.nextShut) {
				t.Errorf("NextClosing = %s, want %s", got.In(loc), tt.nextShut)
			}
		})
	}
}

// On the spring-forward night the wall clock reads 01:59 and then 03:00: an opening that ends
// in the skipped hour ends at 03:00 summer time, one that starts in it starts then, and one
// wholly inside it does not happen (time.Date would move such times an hour on instead).
func TestCalendarRangesInTheSkippedHour(t *testing.T) {
	loc := ams(t)
	at := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, loc) }
	sunday := func(rs ...Range) [7][]Range {
		var w [7][]Range
		w[time.Sunday] = rs
		return w
	}
	tests := []struct {
		name                  string
		week                  [7][]Range
		t                     time.Time
		open                  bool
		nextOpening, nextShut time.Time
	}{
		{"ending in the gap: closed at 03:15 summer time", sunday(Range{0, hm(2, 30)}), at(3, 29, 3, 15), false, at(4, 5, 0, 0), at(4, 5, 2, 30)},
		{"ending in the gap: closes at 03:00 summer time", sunday(Range{0, hm(2, 30)}), at(3, 29, 1, 0), true, at(3, 29, 1, 0), at(3, 29, 3, 0)},
		{"starting in the gap: opens at 03:00 summer time", sunday(Range{hm(2, 30), hm(3, 15)}), at(3, 29, 0, 0), false, at(3, 29, 3, 0), at(3, 29, 3, 15)},
		{"wholly in the gap: skipped that week", sunday(Range{hm(2, 0), hm(2, 45)}, Range{hm(4, 0), hm(5, 0)}), at(3, 29, 0, 0), false, at(3, 29, 4, 0), at(3, 29, 5, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options{Location: loc, Week: tt.week})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Open(tt.t); got != tt.open {
				t.Errorf("Open = %v, want %v", got, tt.open)
			}
			if got := c.NextOpening(tt.t); !got.Equal(tt.nextOpening) {
				t.Errorf("NextOpening = %s, want %s", got.In(loc), tt.nextOpening)
			}
			if got := c.NextClosing(tt.t); !got.Equal(tt.nextShut) {
				t.Errorf("NextClosing = %s, want %s", got.In(loc), tt.nextShut)
			}
			if got := c.Between(at(3, 28, 0, 0), at(3, 30, 0, 0)); got < 0 {
				t.Errorf("Between over the night = %s, negative", got)
			}
		})
	}
}

func TestCalendarAlwaysJoinsDaysIntoOneStretch(t *testing.T) {
	c := Always(time.UTC)
	now := time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)
	if got := c.Add(now, 48*time.Hour); !got.Equal(now.Add(48 * time.Hour)) {
		t.Fatalf("Add = %s", got)
	}
	if got := c.NextClosing(now); !got.IsZero() && got.Sub(now) < 365*24*time.Hour {
		t.Fatalf("an always-open calendar closes at %s", got)
	}
}

func TestCalendarThatNeverOpens(t *testing.T) {
	c, err := New(Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if c.Open(now) || !c.NextOpening(now).IsZero() || !c.Add(now, time.Hour).IsZero() {
		t.Fatal("a calendar without openings opened")
	}
}

func TestNewRefusesBadRanges(t *testing.T) {
	for name, o := range map[string]Options{
		"no time zone": {},
		"overlap":      {Location: time.UTC, Week: officeWeek(Range{hm(8, 0), hm(12, 0)}, Range{hm(11, 0), hm(13, 0)})},
		"inverted":     {Location: time.UTC, Week: officeWeek(Range{hm(12, 0), hm(8, 0)})},
		"past 24:00":   {Location: time.UTC, Week: officeWeek(Range{hm(20, 0), hm(25, 0)})},
		"closure":      {Location: time.UTC, Closures: []Closure{{time.Unix(10, 0), time.Unix(5, 0)}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestEasterAndDutchHolidays(t *testing.T) {
	for year, want := range map[int]Date{2024: {2024, 3, 31}, 2025: {2025, 4, 20}, 2026: {2026, 4, 5}, 2027: {2027, 3, 28}, 2038: {2038, 4, 25}} {
		if got := Easter(year); got != want {
			t.Errorf("Easter(%d) = %s, want %s", year, got, want)
		}
	}
	nl, ok := CountryHolidays("nl")
	if !ok {
		t.Fatal("NL unknown")
	}
	for d, want := range map[Date]string{
		{2026, 5, 14}: "Hemelvaartsdag", {2026, 5, 25}: "Tweede Pinksterdag", {2025, 4, 26}: "Koningsdag",
		{2026, 4, 6}: "Tweede Paasdag", {2026, 12, 26}: "Tweede Kerstdag",
	} {
		if got, ok := nl(d); !ok || got != want {
			t.Errorf("%s = %q, want %q", d, got, want)
		}
	}
	if name, ok := nl(Date{2026, 11, 23}); ok {
		t.Errorf("2026-11-23 is %q", name)
	}
}
