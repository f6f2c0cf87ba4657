package phone

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Type is what kind of line a number reaches, in libphonenumber's classification; the allow
// list names these spellings (dialer.allow.types).
type Type string

// The number types. FixedLineOrMobile is what libphonenumber says where the number itself
// cannot tell the two apart (the North American plan).
const (
	FixedLine         Type = "fixed_line"
	Mobile            Type = "mobile"
	FixedLineOrMobile Type = "fixed_line_or_mobile"
	TollFree          Type = "toll_free"
	PremiumRate       Type = "premium_rate"
	SharedCost        Type = "shared_cost"
	VoIP              Type = "voip"
	PersonalNumber    Type = "personal_number"
	Pager             Type = "pager"
	UAN               Type = "uan"
	Voicemail         Type = "voicemail"
	Unknown           Type = "unknown"
)

// Types lists every type, in libphonenumber's order.
func Types() []Type {
	return []Type{FixedLine, Mobile, FixedLineOrMobile, TollFree, PremiumRate, SharedCost, VoIP,
		PersonalNumber, Pager, UAN, Voicemail, Unknown}
}

// ValidType reports whether t is one of Types.
func ValidType(t Type) bool { return slices.Contains(Types(), t) }

var typeNames = map[phonenumbers.PhoneNumberType]Type{
	phonenumbers.FIXED_LINE:           FixedLine,
	phonenumbers.MOBILE:               Mobile,
	phonenumbers.FIXED_LINE_OR_MOBILE: FixedLineOrMobile,
	phonenumbers.TOLL_FREE:            TollFree,
	phonenumbers.PREMIUM_RATE:         PremiumRate,
	phonenumbers.SHARED_COST:          SharedCost,
	phonenumbers.VOIP:                 VoIP,
	phonenumbers.PERSONAL_NUMBER:      PersonalNumber,
	phonenumbers.PAGER:                Pager,
	phonenumbers.UAN:                  UAN,
	phonenumbers.VOICEMAIL:            Voicemail,
	phonenumbers.UNKNOWN:              Unknown,
}

// Number is a valid telephone number: its E.164 form, the region it belongs to (ISO 3166
// alpha-2, or "001" for non-geographic numbers such as +800) and its type.
type Number struct {
	E164   string `json:"e164"`
	Region string `json:"region"`
	Type   Type   `json:"type"`
}

// Digits is the number without its '+': what a dial string and the whisper carry.
func (n Number) Digits() string { return strings.TrimPrefix(n.E164, "+") }

// e164RE is the only shape a stored number may have; Inspect refuses anything else before
// libphonenumber sees it, because its parser is lenient (it drops letters, reads "tel:" URIs)
// and a lenient check in front of a dial string is how a rewritten job reaches another trunk.
var e164RE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Parse reads a number as people and trunks write it — international ("+31 20 123 4567",
// "0031201234567"), national ("020 123 4567", with or without the trunk 0) — in the numbering
// plan of region (ISO 3166 alpha-2, e.g. NL), and returns it in E.164 with its type. Numbers
// libphonenumber does not know as valid are refused: a guess dials a stranger.
func Parse(raw, region string) (Number, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return Number{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	for _, r := range s {
		if !strings.ContainsRune("+0123456789 -.()/", r) {
			return Number{}, fmt.Errorf("%w: %q has the character %q", ErrInvalid, Mask(s), r)
		}
	}
	if !strings.HasPrefix(s, "+") && !ValidRegion(region) {
		return Number{}, fmt.Errorf("%w: %s is national and region %q is not a known country", ErrInvalid, Mask(s), region)
	}
	pn, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return Number{}, fmt.Errorf("%w: %s: %v", ErrInvalid, Mask(s), err)
	}
	return classify(pn, s)
}

// Inspect classifies a number that must already be in E.164 (what the store holds). It is
// the check made just before a dial: nothing but '+' and digits, and a valid number.
func Inspect(e164 string) (Number, error) {
	if !e164RE.MatchString(e164) {
		return Number{}, fmt.Errorf("%w: %s is not in E.164 form (+ and 7 to 15 digits)", ErrInvalid, Mask(e164))
	}
	pn, err := phonenumbers.Parse(e164, "ZZ")
	if err != nil {
		return Number{}, fmt.Errorf("%w: %s: %v", ErrInvalid, Mask(e164), err)
	}
	n, err := classify(pn, e164)
	if err != nil {
		return Number{}, err
	}
	if n.E164 != e164 {
		// "+310201234567" parses (the national 0 is dropped) but is not the stored form;
		// dialling it would reach a number nobody validated.
		return Number{}, fmt.Errorf("%w: %s is not canonical E.164 (that is %s)", ErrInvalid, Mask(e164), Mask(n.E164))
	}
	return n, nil
}

func classify(pn *phonenumbers.PhoneNumber, shown string) (Number, error) {
	if !phonenumbers.IsValidNumber(pn) {
		return Number{}, fmt.Errorf("%w: %s is not a valid number in the numbering plan of +%d", ErrInvalid, Mask(shown), pn.GetCountryCode())
	}
	t, ok := typeNames[phonenumbers.GetNumberType(pn)]
	if !ok {
		t = Unknown
	}
	return Number{
		E164:   phonenumbers.Format(pn, phonenumbers.E164),
		Region: phonenumbers.GetRegionCodeForNumber(pn),
		Type:   t,
	}, nil
}

// ValidRegion reports whether region is an ISO 3166 alpha-2 code libphonenumber has a
// numbering plan for ("NL", "be"; not "EU" or "001").
func ValidRegion(region string) bool {
	return len(region) == 2 && phonenumbers.GetSupportedRegions()[strings.ToUpper(region)]
}

// RegionForCountryCode is the main region of a country calling code without '+': "31" → "NL",
// "1" → "US", "44" → "GB"; "" when no region has it.
func RegionForCountryCode(code string) string {
	cc, err := strconv.Atoi(code)
	if err != nil || cc <= 0 {
		return ""
	}
	r := phonenumbers.GetRegionCodeForCountryCode(cc)
	if r == "ZZ" || r == "001" {
		return ""
	}
	return r
}

// CountryCode is the calling code of region without '+' ("NL" → "31"); "" for an unknown region.
func CountryCode(region string) string {
	if !ValidRegion(region) {
		return ""
	}
	return strconv.Itoa(phonenumbers.GetCountryCodeForRegion(strings.ToUpper(region)))
}
