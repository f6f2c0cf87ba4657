package phone

import (
	"errors"
	"strings"
	"testing"
)

// The cases of issue 12: national numbers used to be read as Dutch whatever the country, a
// number without its trunk 0 as international, and "+31 (0)20…" kept its 0.
func TestParseInTheNumberingPlanOfTheRegion(t *testing.T) {
	tests := []struct {
		name, raw, region string
		want              Number
	}{
		{"an Italian national number keeps its leading 0", "0612345678", "IT", Number{"+390612345678", "IT", FixedLine}},
		{"a US national number gets +1, not +212 (Morocco)", "2125551234", "US", Number{"+12125551234", "US", FixedLineOrMobile}},
		{"a Dutch number without its trunk 0 stays Dutch, not +20 (Egypt)", "201234567", "NL", Number{"+31201234567", "NL", FixedLine}},
		{"+31 (0)20 drops the national 0", "+31 (0)20 123 4567", "NL", Number{"+31201234567", "NL", FixedLine}},
		{"a Dutch national number", "020 123 4567", "NL", Number{"+31201234567", "NL", FixedLine}},
		{"a Dutch mobile", "06-12345678", "NL", Number{"+31612345678", "NL", Mobile}},
		{"00 is the Dutch international prefix", "0032 2 212 34 56", "NL", Number{"+3222123456", "BE", FixedLine}},
		{"a country code without + from the default region", "31201234567", "NL", Number{"+31201234567", "NL", FixedLine}},
		{"international numbers ignore the region", "+4930123456", "IT", Number{"+4930123456", "DE", FixedLine}},
		{"the region is case-insensitive", "0201234567", "nl", Number{"+31201234567", "NL", FixedLine}},
		{"Dutch premium rate", "0900 123 456", "NL", Number{"+31900123456", "NL", PremiumRate}},
		{"Dutch 088 is UAN", "088 201 2345", "NL", Number{"+31882012345", "NL", UAN}},
		{"international premium rate", "+979 123456789", "NL", Number{"+979123456789", "001", PremiumRate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.raw, tt.region)
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q, %q) = %+v, %v; want %+v", tt.raw, tt.region, got, err, tt.want)
			}
		})
	}
}

func TestParseRefusesWhatIsNotAValidNumber(t *testing.T) {
	tests := []struct {
		name, raw, region, wantErr string
	}{
		{"empty", "", "NL", "empty"},
		{"too short for the Dutch plan", "02012345", "NL", "not a valid number"},
		{"a UK drama number", "+44 7700 900123", "NL", "not a valid number"},
		{"a SIP URI", "sip:+31201234567@evil.example", "NL", "has the character 's'"},
		{"an unknown default region", "0201234567", "EU", "not a known country"},
		{"letters", "0800-CALLBACK", "NL", "has the character 'C'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.raw, tt.region)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse(%q, %q) = %+v, %v; want ErrInvalid containing %q", tt.raw, tt.region, got, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "1234567") || strings.Contains(err.Error(), "900123") {
				t.Fatalf("error %q leaks the unmasked number", err)
			}
		})
	}
}

// Inspect is the check in front of a dial string: only the canonical E.164 form passes.
func TestInspectAcceptsOnlyCanonicalE164(t *testing.T) {
	tests := []struct {
		in      string
		want    Number
		wantErr string
	}{
		{in: "+31201234567", want: Number{"+31201234567", "NL", FixedLine}},
		{in: "+12125551234", want: Number{"+12125551234", "US", FixedLineOrMobile}},
		{in: "+31201234567@other-trunk/sip:+44909879@evil.example", wantErr: "not in E.164 form"},
		{in: "31201234567", wantErr: "not in E.164 form"},
		{in: "+31 20 123 4567", wantErr: "not in E.164 form"},
		{in: "+310201234567", wantErr: "not canonical E.164"},
		{in: "+31201234", wantErr: "not a valid number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Inspect(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Inspect(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Inspect(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRegionsAndCountryCodes(t *testing.T) {
	for code, region := range map[string]string{"31": "NL", "1": "US", "44": "GB", "39": "IT", "999": "", "x": "", "800": ""} {
		if got := RegionForCountryCode(code); got != region {
			t.Errorf("RegionForCountryCode(%q) = %q, want %q", code, got, region)
		}
	}
	for region, code := range map[string]string{"NL": "31", "be": "32", "EU": "", "001": ""} {
		if got := CountryCode(region); got != code {
			t.Errorf("CountryCode(%q) = %q, want %q", region, got, code)
		}
	}
}

func TestMaskTextMasksEveryNumberInFreeText(t *testing.T) {
	tests := map[string]string{
		"create channel PJSIP/+31201234567@provider: 500 Allocation failed": "create channel PJSIP/+31*******67@provider: 500 Allocation failed",
		"dial 0031201234567 and 0201234567":                                 "dial 003********67 and 020*****67",
		"customer reached 1003 (linkedid 1795351341.53)":                    "customer reached 1003 (linkedid 1795351341.53)",
		"agent anna unavailable: 404 Not Found":                             "agent anna unavailable: 404 Not Found",
		"already masked +31*******67":                                       "already masked +31*******67",
		"+31201234567":                                                      "+31*******67",
		"+ sign alone and 123456":                                           "+ sign alone and 123456",
		"PJSIP/9+31201234567@provider: 503 (a tech prefix)":                 "PJSIP/9+31*******67@provider: 503 (a tech prefix)",
		"caller id 31201234567+31201234567":                                 "caller id 312******67+31*******67",
		"":                                                                  "",
	}
	for in, want := range tests {
		if got := MaskText(in); got != want {
			t.Errorf("MaskText(%q) = %q, want %q", in, got, want)
		}
		if again := MaskText(want); again != want {
			t.Errorf("MaskText is not idempotent on %q: %q", want, again)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"+31201234502", "0201234502", "201234567", "+31 (0)20 1234567", "00", "+", "0900123456"} {
		f.Add(s, "NL")
	}
	f.Fuzz(func(t *testing.T, s, region string) {
		n, err := Parse(s, region)
		if err != nil {
			return
		}
		again, err := Inspect(n.E164)
		if err != nil || again != n {
			t.Fatalf("Parse(%q, %q) = %+v, but Inspect of its E.164 = %+v, %v", s, region, n, again, err)
		}
	})
}
