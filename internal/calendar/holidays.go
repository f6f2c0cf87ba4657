package calendar

import (
	"sort"
	"strings"
	"time"
)

// Public holidays are computed from rules rather than taken from a library or a downloaded
// table: the rules are short and fixed by law, Easter follows from the Gregorian computus for
// any year, and a dependency would be one more thing to vet and update for a few dates a year.
// Each country names the text its rules come from.

// Country is one country's public holidays.
type Country struct {
	Code   string
	Source string
	rules  func(year int) map[Date]string
}

// Countries lists the holiday sets callbackd knows, by ISO 3166 code.
func Countries() []Country {
	list := []Country{
		{Code: "NL", Source: "Algemene termijnenwet, art. 3 lid 1 (algemeen erkende feestdagen)", rules: netherlands},
		{Code: "BE", Source: "Wet van 4 januari 1974 betreffende de feestdagen, art. 1", rules: belgium},
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
	return list
}

// CountryHolidays returns the holidays of the country with ISO code (case-insensitive).
func CountryHolidays(code string) (Holidays, bool) {
	for _, c := range Countries() {
		if strings.EqualFold(c.Code, code) {
			rules := c.rules
			return func(d Date) (string, bool) {
				name, ok := rules(d.Year)[d]
				return name, ok
			}, true
		}
	}
	return nil, false
}

// Easter is Easter Sunday of year (anonymous Gregorian algorithm, Meeus/Jones/Butcher).
func Easter(year int) Date {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return Date{year, time.Month(month), day}
}

func (d Date) addDays(n int) Date {
	t := time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC)
	return DateOf(t, time.UTC)
}

func netherlands(y int) map[Date]string {
	e := Easter(y)
	kings := Date{y, time.April, 27}
	// Koningsdag moves to the Saturday before when 27 April is a Sunday.
	if time.Date(y, time.April, 27, 12, 0, 0, 0, time.UTC).Weekday() == time.Sunday {
		kings = Date{y, time.April, 26}
	}
	return map[Date]string{
		{y, time.January, 1}:   "Nieuwjaarsdag",
		e:                      "Eerste Paasdag",
		e.addDays(1):           "Tweede Paasdag",
		kings:                  "Koningsdag",
		{y, time.May, 5}:       "Bevrijdingsdag",
		e.addDays(39):          "Hemelvaartsdag",
		e.addDays(49):          "Eerste Pinksterdag",
		e.addDays(50):          "Tweede Pinksterdag",
		{y, time.December, 25}: "Eerste Kerstdag",
		{y, time.December, 26}: "Tweede Kerstdag",
	}
}

func belgium(y int) map[Date]string {
	e := Easter(y)
	return map[Date]string{
		{y, time.January, 1}:   "Nieuwjaar",
		e.addDays(1):           "Paasmaandag",
		{y, time.May, 1}:       "Feest van de Arbeid",
		e.addDays(39):          "Onze-Lieve-Heer-Hemelvaart",
		e.addDays(50):          "Pinkstermaandag",
		{y, time.July, 21}:     "Nationale feestdag",
		{y, time.August, 15}:   "Onze-Lieve-Vrouw-Hemelvaart",
		{y, time.November, 1}:  "Allerheiligen",
		{y, time.November, 11}: "Wapenstilstand",
		{y, time.December, 25}: "Kerstmis",
	}
}
