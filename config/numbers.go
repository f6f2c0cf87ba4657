package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/callbackd/callbackd/internal/phone"
)

// Allow is the toll-fraud guard (dialer.allow): a number is dialled only when it is a valid
// number of one of Countries, of one of Types, and — when Patterns are given — matches one of
// them. The older form, a plain list of patterns, is read as Patterns.
type Allow struct {
	// Countries are ISO 3166 regions (NL, BE). Default: detector.default_country when no
	// patterns are given; with patterns, every country (the patterns decide).
	Countries []string `yaml:"countries"`
	// Types are phone.Type spellings. Default: fixed_line and mobile. Premium rate, shared
	// cost, UAN, personal and unknown-type numbers are dialled only when named here.
	Types []string `yaml:"types"`
	// Patterns are regexps over the E.164 number, anchored automatically.
	Patterns []string `yaml:"patterns"`
}

// DefaultAllowTypes are the types dialled when dialer.allow.types is left out: ordinary lines.
var DefaultAllowTypes = []string{string(phone.FixedLine), string(phone.Mobile)}

// DefaultCountry is detector.default_country when neither it nor default_country_code is set.
const DefaultCountry = "NL"

// dialGuard is dialer.allow compiled by validation.
type dialGuard struct {
	countries []string // upper case; empty: any
	types     []phone.Type
	patterns  []*regexp.Regexp
}

// Decision is the allow-list's verdict on one number, with the reason in words for logs and
// `config check --number`.
type Decision struct {
	Number  phone.Number `json:"number"`
	Allowed bool         `json:"allowed"`
	Reason  string       `json:"reason"`
}

// Allowed reports whether number (E.164) may be dialled. It fails closed: false until the
// config has been validated by Load or Parse, because the allow-list is the toll-fraud guard
// and an unchecked list must never let a call out.
func (c *Config) Allowed(number string) bool { return c.Decide(number).Allowed }

// Decide checks an E.164 number against dialer.allow: it must be canonical E.164 (nothing else
// ever reaches a dial string), valid, of an allowed country and type, and match a pattern
// when there are patterns.
func (c *Config) Decide(number string) Decision {
	if c.compiled == nil || c.compiled.dial == nil {
		return Decision{Reason: "the configuration has not been validated"}
	}
	n, err := phone.Inspect(number)
	if err != nil {
		return Decision{Reason: err.Error()}
	}
	return c.compiled.dial.decide(n)
}

// Explain parses raw as detector.default_country would read a caller number and decides it:
// what `callbackd config check --number` prints.
func (c *Config) Explain(raw string) (Decision, error) {
	n, err := phone.Parse(raw, c.Detector.DefaultCountry)
	if err != nil {
		return Decision{}, fmt.Errorf("reading %s: %w", phone.Mask(raw), err)
	}
	return c.Decide(n.E164), nil
}

func (g *dialGuard) decide(n phone.Number) Decision {
	d := Decision{Number: n}
	if len(g.countries) > 0 && !slices.Contains(g.countries, n.Region) {
		d.Reason = fmt.Sprintf("refused: %s numbers are not in dialer.allow.countries %v", n.Region, g.countries)
		return d
	}
	if !g.typeAllowed(n.Type) {
		d.Reason = fmt.Sprintf("refused: %s numbers are not in dialer.allow.types %v", n.Type, g.types)
		return d
	}
	if len(g.patterns) > 0 && !slices.ContainsFunc(g.patterns, func(re *regexp.Regexp) bool { return re.MatchString(n.E164) }) {
		d.Reason = "refused: matches none of dialer.allow.patterns"
		return d
	}
	d.Allowed = true
	d.Reason = fmt.Sprintf("allowed: %s %s", n.Region, n.Type)
	return d
}

// typeAllowed admits a fixed_line_or_mobile number (the North American plan cannot tell) when
// both fixed_line and mobile are allowed, or when it is named itself.
func (g *dialGuard) typeAllowed(t phone.Type) bool {
	if slices.Contains(g.types, t) {
		return true
	}
	return t == phone.FixedLineOrMobile && slices.Contains(g.types, phone.FixedLine) && slices.Contains(g.types, phone.Mobile)
}

// normalizeNumbers settles detector.default_country from the older default_country_code and
// fills dialer.allow's defaults, so the effective configuration shows what is enforced.
func (v *validator) normalizeNumbers(c *Config) {
	d := &c.Detector
	if v.set("detector.default_country_code") && !v.set("detector.default_country") {
		d.DefaultCountry = phone.RegionForCountryCode(d.DefaultCountryCode)
	}
	d.DefaultCountry = strings.ToUpper(d.DefaultCountry)
	if code := phone.CountryCode(d.DefaultCountry); code != "" && !v.set("detector.default_country_code") {
		d.DefaultCountryCode = code
	}
	a := &c.Dialer.Allow
	if !v.set("dialer.allow.countries") {
		a.Countries = nil
		if len(a.Patterns) == 0 && d.DefaultCountry != "" {
			a.Countries = []string{d.DefaultCountry}
		}
	}
}

// numbers checks detector.default_country and dialer.allow and compiles the allow-list.
func (v *validator) numbers(c *Config, refs *compiledRefs) {
	d := c.Detector
	switch {
	case v.set("detector.default_country_code") && !digitsRE.MatchString(d.DefaultCountryCode):
		v.addf("detector.default_country_code", "must be 1 to 3 digits without + (e.g. 31), got %q", d.DefaultCountryCode)
	case v.set("detector.default_country_code") && !v.set("detector.default_country") && d.DefaultCountry == "":
		v.addf("detector.default_country_code", "no country has the calling code %q; set detector.default_country (e.g. NL) instead", d.DefaultCountryCode)
	case !phone.ValidRegion(d.DefaultCountry):
		v.addf("detector.default_country", "must be an ISO 3166 country code such as NL, BE or DE, got %q", d.DefaultCountry)
	case phone.CountryCode(d.DefaultCountry) != d.DefaultCountryCode:
		v.addf("detector.default_country_code", "+%s is not the calling code of detector.default_country %s (+%s); leave default_country_code out",
			d.DefaultCountryCode, d.DefaultCountry, phone.CountryCode(d.DefaultCountry))
	}

	a := c.Dialer.Allow
	// In the list form the patterns are dialer.allow[i]; in the mapping form dialer.allow.patterns[i].
	mapping := v.set("dialer.allow.countries") || v.set("dialer.allow.types") || v.set("dialer.allow.patterns")
	patternPath := "dialer.allow"
	if mapping {
		patternPath = "dialer.allow.patterns"
	}
	if v.set("dialer.allow") && !mapping && len(a.Patterns) == 0 {
		v.addf("dialer.allow", "at least one pattern is required: no number could ever be called back")
	}
	g := &dialGuard{}
	if v.set("dialer.allow.countries") && len(a.Countries) == 0 {
		v.addf("dialer.allow.countries", "must not be empty: leave it out for the default (detector.default_country, or every country the patterns admit)")
	}
	for i, r := range a.Countries {
		if !phone.ValidRegion(r) {
			v.addf(fmt.Sprintf("dialer.allow.countries[%d]", i), "must be an ISO 3166 country code such as NL, BE or DE, got %q", r)
			continue
		}
		g.countries = append(g.countries, strings.ToUpper(r))
	}
	if len(a.Types) == 0 {
		v.addf("dialer.allow.types", "must not be empty: no number could ever be called back (default: %s)", strings.Join(DefaultAllowTypes, ", "))
	}
	for i, t := range a.Types {
		if !phone.ValidType(phone.Type(t)) {
			v.addf(fmt.Sprintf("dialer.allow.types[%d]", i), "unknown number type %q; one of %s", t, typeList())
			continue
		}
		g.types = append(g.types, phone.Type(t))
	}
	for i, pat := range a.Patterns {
		p := fmt.Sprintf("%s[%d]", patternPath, i)
		if strings.TrimSpace(pat) == "" {
			v.addf(p, "must not be empty")
			continue
		}
		if re := v.regexp(p, pat); re != nil {
			// Anchoring here means a pattern like \+31.* can never match a longer number
			// that merely contains an allowed one.
			g.patterns = append(g.patterns, regexp.MustCompile(`^(?:`+pat+`)$`))
		}
	}
	refs.dial = g
}

func typeList() string {
	names := make([]string, 0, len(phone.Types()))
	for _, t := range phone.Types() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}
