package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callbackd/callbackd/internal/calendar"
)

// Deadline clocks: how a queue's deadline durations are measured.
const (
	// DeadlineBusiness counts only the queue's open hours: "4h" made at 16:00 on a day that
	// closes at 17:30 runs out 2.5 hours into the next opening.
	DeadlineBusiness = "business"
	// DeadlineWall counts every hour, for a service that calls back around the clock.
	DeadlineWall = "wall"
)

// OpenHours is one line of a week: the days it applies to and their ranges ("08:30-12:00").
type OpenHours struct {
	Days  []string `yaml:"days"`
	Hours []string `yaml:"hours"`
}

// ShiftException replaces an agent's week on one date: other hours, or none (a day off).
type ShiftException struct {
	Date  string   `yaml:"date"`
	Hours []string `yaml:"hours"`
}

var weekdayIndex = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// parseRange parses "HH:MM-HH:MM"; the end may be 24:00.
func parseRange(s string) (calendar.Range, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return calendar.Range{}, fmt.Errorf("invalid range %q (want HH:MM-HH:MM, e.g. 08:30-12:00)", s)
	}
	f, err := parseClock(strings.TrimSpace(from))
	if err != nil {
		return calendar.Range{}, fmt.Errorf("invalid range %q: %w", s, err)
	}
	t := 24 * 60
	if strings.TrimSpace(to) != "24:00" {
		if t, err = parseClock(strings.TrimSpace(to)); err != nil {
			return calendar.Range{}, fmt.Errorf("invalid range %q: %w", s, err)
		}
	}
	if f >= t {
		return calendar.Range{}, fmt.Errorf("invalid range %q: the end must be after the start", s)
	}
	return calendar.Range{From: f, To: t}, nil
}

// parseDate parses YYYY-MM-DD.
func parseDate(s string) (calendar.Date, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return calendar.Date{}, fmt.Errorf("invalid date %q (want YYYY-MM-DD)", s)
	}
	return calendar.DateOf(t, time.UTC), nil
}

// parseClosure reads one entry of `closed`: a date ("2026-12-24"), an inclusive date range
// ("2026-12-24..2026-12-26") or a range of local times that may cross midnight
// ("2026-12-31 16:00..2027-01-01 10:00"), in loc.
func parseClosure(s string, loc *time.Location) (calendar.Closure, error) {
	from, to, isRange := strings.Cut(s, "..")
	if !isRange {
		to = from
	}
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	if _, err := time.ParseInLocation("2006-01-02 15:04", from, loc); err == nil && !isRange {
		return calendar.Closure{}, fmt.Errorf("invalid closure %q: a time of day needs an end too (\"%s..YYYY-MM-DD HH:MM\")", s, from)
	}
	point := func(v string, end bool) (time.Time, error) {
		if t, err := time.ParseInLocation("2006-01-02 15:04", v, loc); err == nil {
			return t, nil
		}
		t, err := time.ParseInLocation("2006-01-02", v, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("invalid closure %q (want YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD or \"YYYY-MM-DD HH:MM..YYYY-MM-DD HH:MM\")", s)
		}
		if end {
			// A date as the end of a closure closes that whole day.
			y, m, d := t.Date()
			t = time.Date(y, m, d+1, 0, 0, 0, 0, loc)
		}
		return t, nil
	}
	f, err := point(from, false)
	if err != nil {
		return calendar.Closure{}, err
	}
	t, err := point(to, true)
	if err != nil {
		return calendar.Closure{}, err
	}
	if !f.Before(t) {
		return calendar.Closure{}, fmt.Errorf("invalid closure %q: it ends before it starts", s)
	}
	return calendar.Closure{From: f, To: t}, nil
}

// week reads the legacy days/start/end (one range on those days) or the open list.
func (h CallingHours) week() ([7][]calendar.Range, []error) {
	var w [7][]calendar.Range
	var errs []error
	if len(h.Week) == 0 {
		start, err1 := parseClock(h.Start)
		end, err2 := parseClock(h.End)
		if err1 != nil || err2 != nil || start >= end {
			return w, []error{fmt.Errorf("invalid start/end")}
		}
		for _, d := range h.Days {
			if wd, ok := weekdayIndex[d]; ok {
				w[wd] = []calendar.Range{{From: start, To: end}}
			}
		}
		return w, nil
	}
	for _, o := range h.Week {
		for _, d := range o.Days {
			wd, ok := weekdayIndex[d]
			if !ok {
				continue
			}
			for _, s := range o.Hours {
				r, err := parseRange(s)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				w[wd] = append(w[wd], r)
			}
		}
	}
	return w, errs
}

// Calendar is the queue's business time: its calling hours, closures and holidays.
func (h CallingHours) Calendar() (*calendar.Calendar, error) {
	loc, err := time.LoadLocation(h.Timezone)
	if err != nil {
		return nil, fmt.Errorf("calling hours: %w", err)
	}
	w, errs := h.week()
	if len(errs) > 0 {
		return nil, fmt.Errorf("calling hours: %w", errs[0])
	}
	o := calendar.Options{Location: loc, Week: w}
	for _, s := range h.Closed {
		cl, err := parseClosure(s, loc)
		if err != nil {
			return nil, fmt.Errorf("calling hours: %w", err)
		}
		o.Closures = append(o.Closures, cl)
	}
	if h.Holidays != "" {
		hol, ok := calendar.CountryHolidays(h.Holidays)
		if !ok {
			return nil, fmt.Errorf("calling hours: no holidays known for %q", h.Holidays)
		}
		o.Holidays = hol
	}
	return calendar.New(o)
}

// ShiftCalendar builds an agent's rota in loc (the time zone of the agent's first queue); nil when the
// agent has no shifts, which means always on shift.
func (a Agent) ShiftCalendar(loc *time.Location) (*calendar.Calendar, error) {
	if len(a.Shifts.Week) == 0 && len(a.Shifts.Except) == 0 {
		return nil, nil
	}
	w, errs := CallingHours{Week: a.Shifts.Week}.week()
	if len(errs) > 0 {
		return nil, fmt.Errorf("shifts of agent %s: %w", a.ID, errs[0])
	}
	o := calendar.Options{Location: loc, Week: w, Overrides: map[calendar.Date][]calendar.Range{}}
	for _, e := range a.Shifts.Except {
		d, err := parseDate(e.Date)
		if err != nil {
			return nil, fmt.Errorf("shifts of agent %s: %w", a.ID, err)
		}
		rs := []calendar.Range{}
		for _, s := range e.Hours {
			r, err := parseRange(s)
			if err != nil {
				return nil, fmt.Errorf("shifts of agent %s: %w", a.ID, err)
			}
			rs = append(rs, r)
		}
		o.Overrides[d] = rs
	}
	return calendar.New(o)
}

// Shifts is an agent's rota: a week of shifts and exceptions on dates.
type Shifts struct {
	Week   []OpenHours      `yaml:"week"`
	Except []ShiftException `yaml:"except"`
}

// openHours checks a list of {days, hours} lines at p.
func (v *validator) openHours(p string, list []OpenHours) {
	type span struct {
		r    calendar.Range
		path string
	}
	perDay := map[string][]span{}
	for i, o := range list {
		op := fmt.Sprintf("%s[%d]", p, i)
		if len(o.Days) == 0 {
			v.addf(op+".days", "at least one day is required")
		}
		var days []string // known, each once
		for j, d := range o.Days {
			switch {
			case !weekdays[d]:
				v.addf(fmt.Sprintf("%s.days[%d]", op, j), "unknown day %q (use mon, tue, wed, thu, fri, sat, sun)", d)
			case slices.Contains(days, d):
				v.addf(fmt.Sprintf("%s.days[%d]", op, j), "duplicate day %q", d)
			default:
				days = append(days, d)
			}
		}
		if len(o.Hours) == 0 {
			v.addf(op+".hours", "at least one range such as 08:30-17:30 is required")
		}
		for j, s := range o.Hours {
			hp := fmt.Sprintf("%s.hours[%d]", op, j)
			r, err := parseRange(s)
			if err != nil {
				v.addf(hp, "%v", err)
				continue
			}
			reported := map[string]bool{}
			for _, d := range days {
				for _, other := range perDay[d] {
					if r.From < other.r.To && other.r.From < r.To && !reported[other.path] {
						reported[other.path] = true
						v.addf(hp, "%s overlaps %s on %s (%s)", r, other.r, d, other.path)
					}
				}
				perDay[d] = append(perDay[d], span{r, hp})
			}
		}
	}
}

// businessTime checks what calling hours add to the legacy days/start/end: open, closed and
// holidays. It reports whether the legacy keys are still to be checked.
func (v *validator) businessTime(p string, h CallingHours) (legacy bool) {
	loc, _ := time.LoadLocation(h.Timezone)
	if loc == nil {
		loc = time.UTC
	}
	for i, s := range h.Closed {
		if _, err := parseClosure(s, loc); err != nil {
			v.addf(fmt.Sprintf("%s.closed[%d]", p, i), "%v", err)
		}
	}
	if h.Holidays != "" {
		if _, ok := calendar.CountryHolidays(h.Holidays); !ok {
			var codes []string
			for _, c := range calendar.Countries() {
				codes = append(codes, c.Code)
			}
			v.addf(p+".holidays", "no public holidays known for %q (known: %s)", h.Holidays, strings.Join(codes, ", "))
		}
	}
	if len(h.Week) == 0 {
		return true
	}
	for _, k := range []string{"days", "start", "end"} {
		if v.set(p + "." + k) {
			v.addf(p+"."+k, "not used with calling_hours.open; put the days and hours there")
		}
	}
	v.openHours(p+".open", h.Week)
	return false
}

// shifts checks an agent's rota at p.
func (v *validator) shifts(p string, s Shifts) {
	v.openHours(p+".week", s.Week)
	seen := map[string]int{}
	for i, e := range s.Except {
		ep := fmt.Sprintf("%s.except[%d]", p, i)
		if _, err := parseDate(e.Date); err != nil {
			v.addf(ep+".date", "%v", err)
		} else if j, dup := seen[e.Date]; dup {
			v.addf(ep+".date", "duplicate date %s (also except[%d])", e.Date, j)
		} else {
			seen[e.Date] = i
		}
		var prev []calendar.Range
		for j, s := range e.Hours {
			r, err := parseRange(s)
			if err != nil {
				v.addf(fmt.Sprintf("%s.hours[%d]", ep, j), "%v", err)
				continue
			}
			for _, o := range prev {
				if r.From < o.To && o.From < r.To {
					v.addf(fmt.Sprintf("%s.hours[%d]", ep, j), "%s overlaps %s", r, o)
				}
			}
			prev = append(prev, r)
		}
	}
}

func (v *validator) deadlineClock(p, clock string) {
	switch clock {
	case DeadlineBusiness, DeadlineWall:
	default:
		v.addf(p, "must be %s or %s, got %q", DeadlineBusiness, DeadlineWall, clock)
	}
}

// NextClosing, Add and Between answer like the compiled Calendar, for callers holding only the
// config; a calendar that does not compile answers zero.
func (h CallingHours) NextClosing(t time.Time) time.Time {
	c, err := h.Calendar()
	if err != nil {
		return time.Time{}
	}
	return c.NextClosing(t)
}

// Add is the instant d of open time after t (see calendar.Calendar.Add).
func (h CallingHours) Add(t time.Time, d time.Duration) time.Time {
	c, err := h.Calendar()
	if err != nil {
		return time.Time{}
	}
	return c.Add(t, d)
}

// Between is the open time in [a, b).
func (h CallingHours) Between(a, b time.Time) time.Duration {
	c, err := h.Calendar()
	if err != nil {
		return 0
	}
	return c.Between(a, b)
}
