// Package calendar is business time: when a queue is open (ranges per weekday, several a day),
// minus closures and public holidays, in one time zone. Deadlines, retry backoffs, owner holds,
// the at-risk forecast and agents' shifts all measure time with it, so "4 hours" means four
// hours the business is open, and a promise made at night starts counting at the next opening.
//
// It is its own package, below config and dialer, because both need it and neither should own
// the other's vocabulary: config parses and validates the YAML into a Calendar, the engine only
// asks it questions. It holds no mutable state and reads no clock: every question names its time.
package calendar

import (
	"fmt"
	"sort"
	"time"
)

// Range is one opening on a day, in minutes after local midnight: [From, To), To ≤ 24:00.
type Range struct{ From, To int }

// Date is a civil date in the calendar's time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf is t's date in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return Date{y, m, d}
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// Before reports whether d is earlier than e.
func (d Date) Before(e Date) bool {
	if d.Year != e.Year {
		return d.Year < e.Year
	}
	if d.Month != e.Month {
		return d.Month < e.Month
	}
	return d.Day < e.Day
}

// Closure is a span the calendar is closed whatever its week says: [From, To).
type Closure struct{ From, To time.Time }

// Holidays names the public holiday on a date, if it is one.
type Holidays func(Date) (name string, ok bool)

// Calendar is a week of openings with exceptions. The zero value is never open; use New.
type Calendar struct {
	loc       *time.Location
	week      [7][]Range // by time.Weekday
	overrides map[Date][]Range
	closures  []Closure
	holidays  Holidays
}

// Options builds a Calendar; Week is indexed by time.Weekday.
type Options struct {
	Location *time.Location
	Week     [7][]Range
	// Overrides replace the week's ranges on a date (an empty list: closed that day), e.g. an
	// agent's swapped shift; they win over holidays.
	Overrides map[Date][]Range
	Closures  []Closure
	Holidays  Holidays
}

// horizon bounds every search for an opening: a calendar that opens less than once in two
// years is, for promises, never open.
const horizonDays = 2 * 366

// New checks the options and returns the calendar.
func New(o Options) (*Calendar, error) {
	if o.Location == nil {
		return nil, fmt.Errorf("calendar: no time zone")
	}
	c := &Calendar{loc: o.Location, overrides: map[Date][]Range{}, holidays: o.Holidays}
	check := func(where string, rs []Range) ([]Range, error) {
		out := append([]Range(nil), rs...)
		sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
		for i, r := range out {
			if r.From < 0 || r.To > 24*60 || r.From >= r.To {
				return nil, fmt.Errorf("calendar: %s: range %s is not a part of one day", where, r)
			}
			if i > 0 && r.From < out[i-1].To {
				return nil, fmt.Errorf("calendar: %s: ranges %s and %s overlap", where, out[i-1], r)
			}
		}
		return out, nil
	}
	for d, rs := range o.Week {
		var err error
		if c.week[d], err = check(time.Weekday(d).String(), rs); err != nil {
			return nil, err
		}
	}
	for d, rs := range o.Overrides {
		var err error
		if c.overrides[d], err = check(d.String(), rs); err != nil {
			return nil, err
		}
	}
	for _, cl := range o.Closures {
		if !cl.From.Before(cl.To) {
			return nil, fmt.Errorf("calendar: closure %s..%s ends before it starts", cl.From, cl.To)
		}
		c.closures = append(c.closures, cl)
	}
	return c, nil
}

// Always is a calendar that is always open, for a 24/7 service or an agent without shifts.
func Always(loc *time.Location) *Calendar {
	var o Options
	o.Location = loc
	for d := range o.Week {
		o.Week[d] = []Range{{0, 24 * 60}}
	}
	c, _ := New(o)
	return c
}

func (r Range) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", r.From/60, r.From%60, r.To/60, r.To%60)
}

// Location is the calendar's time zone.
func (c *Calendar) Location() (*time.Location, error) {
	if c == nil || c.loc == nil {
		return nil, fmt.Errorf("calendar: no time zone")
	}
	return c.loc, nil
}

// Holiday names the public holiday on date d, if it is one.
func (c *Calendar) Holiday(d Date) (string, bool) {
	if c.holidays == nil {
		return "", false
	}
	return c.holidays(d)
}

// interval is one stretch of open time [start, end).
type interval struct{ start, end time.Time }

// day lists the open intervals of the local day that starts at midnight, with closures taken
// out. Wall-clock ranges become instants with time.Date, so on a DST day an opening keeps its
// wall-clock times and is an hour shorter or longer when it spans the change.
func (c *Calendar) day(midnight time.Time) []interval {
	d := DateOf(midnight, c.loc)
	rs, ok := c.overrides[d]
	if !ok {
		if _, hol := c.Holiday(d); hol {
			return nil
		}
		rs = c.week[midnight.Weekday()]
	}
	var out []interval
	for _, r := range rs {
		s, e := c.wall(d, r.From), c.wall(d, r.To)
		if !s.Before(e) {
			continue // wholly inside a skipped hour: it does not happen that day
		}
		out = append(out, c.cut(interval{s, e})...)
	}
	return out
}

// wall is the instant the clock reads minutes after midnight on date d. A time the clock
// skips (02:30 when it jumps from 02:00 to 03:00) is the jump itself: time.Date would put it
// an hour later, so a range ending at 02:30 would stay open until 03:30 summer time.
func (c *Calendar) wall(d Date, minutes int) time.Time {
	t := time.Date(d.Year, d.Month, d.Day, 0, minutes, 0, 0, c.loc)
	want := time.Date(d.Year, d.Month, d.Day, 0, minutes, 0, 0, time.UTC)
	y, m, dd := t.Date()
	if wy, wm, wd := want.Date(); y != wy || m != wm || dd != wd || t.Hour() != want.Hour() || t.Minute() != want.Minute() {
		start, _ := t.ZoneBounds()
		if !start.IsZero() {
			return start
		}
	}
	return t
}

// cut removes the closures from iv.
func (c *Calendar) cut(iv interval) []interval {
	parts := []interval{iv}
	for _, cl := range c.closures {
		var next []interval
		for _, p := range parts {
			if !cl.From.Before(p.end) || !cl.To.After(p.start) {
				next = append(next, p)
				continue
			}
			if p.start.Before(cl.From) {
				next = append(next, interval{p.start, cl.From})
			}
			if cl.To.Before(p.end) {
				next = append(next, interval{cl.To, p.end})
			}
		}
		parts = next
	}
	return parts
}

// next returns the open interval that contains t or, when t is closed, the first one after
// it, with adjacent intervals (a range ending at 24:00 and the next day's starting at 00:00)
// joined; ok is false when none starts within the horizon.
func (c *Calendar) next(t time.Time) (iv interval, ok bool) {
	if c == nil || c.loc == nil {
		return interval{}, false
	}
	local := t.In(c.loc)
	y, m, d := local.Date()
	found := false
	for i := 0; i <= horizonDays; i++ {
		midnight := time.Date(y, m, d+i, 0, 0, 0, 0, c.loc)
		for _, p := range c.day(midnight) {
			if !p.end.After(t) {
				continue
			}
			switch {
			case !found:
				iv, found = p, true
			case p.start.Equal(iv.end):
				iv.end = p.end
			default:
				return iv, true
			}
		}
		// The stretch found ends before the next day begins: nothing can join it.
		if found && iv.end.Before(time.Date(y, m, d+i+1, 0, 0, 0, 0, c.loc)) {
			return iv, true
		}
	}
	return iv, found
}

// Open reports whether t is in open time.
func (c *Calendar) Open(t time.Time) bool {
	iv, ok := c.next(t)
	return ok && !iv.start.After(t)
}

// NextOpening is t when open, else the next opening; zero when none is found.
func (c *Calendar) NextOpening(t time.Time) time.Time {
	iv, ok := c.next(t)
	if !ok {
		return time.Time{}
	}
	if iv.start.Before(t) {
		return t
	}
	return iv.start
}

// NextClosing is when the open stretch containing t ends (or the next one, when t is closed);
// zero when the calendar does not close within the horizon or never opens.
func (c *Calendar) NextClosing(t time.Time) time.Time {
	iv, ok := c.next(t)
	if !ok {
		return time.Time{}
	}
	return iv.end
}

// Add is the instant when d of open time has passed after t: a promise of "4 hours" made at
// 16:00 on a day closing at 17:30 runs out at 10:00 the next morning that opens at 07:30.
// Made while closed, it starts counting at the next opening. Zero when the calendar runs out.
func (c *Calendar) Add(t time.Time, d time.Duration) time.Time {
	for {
		iv, ok := c.next(t)
		if !ok {
			return time.Time{}
		}
		if iv.start.After(t) {
			t = iv.start
		}
		if left := iv.end.Sub(t); d <= left {
			return t.Add(d)
		} else {
			d -= left
		}
		t = iv.end
	}
}

// Between is how much open time lies in [a, b).
func (c *Calendar) Between(a, b time.Time) time.Duration {
	var sum time.Duration
	for a.Before(b) {
		iv, ok := c.next(a)
		if !ok || !iv.start.Before(b) {
			break
		}
		s := laterOf(a, iv.start)
		e := iv.end
		if b.Before(e) {
			e = b
		}
		sum += e.Sub(s)
		a = iv.end
	}
	return sum
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
