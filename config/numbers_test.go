package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func parseWith(t *testing.T, extra string) (*Config, error) {
	t.Helper()
	base, err := os.ReadFile("testdata/minimal.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	return Parse(append(base, []byte(extra)...), nil)
}

// The allow decisions of issue 12: ordinary lines of the default country are dialled;
// premium rate, shared cost, UAN, personal numbers, other countries are not unless named.
func TestAllowByCountryAndType(t *testing.T) {
	tests := []struct {
		name, config, number string
		want                 bool
		reason               string
	}{
		{"default: Dutch fixed line", "", "+31201234567", true, "allowed: NL fixed_line"},
		{"default: Dutch mobile", "", "+31612345678", true, "allowed: NL mobile"},
		{"default: Dutch 0900 premium rate", "", "+31900123456", false, "premium_rate numbers are not in dialer.allow.types"},
		{"default: Dutch 0906 premium rate", "", "+319061234", false, "premium_rate"},
		{"default: Dutch 0909 premium rate", "", "+319091234", false, "premium_rate"},
		{"default: Dutch 084 (personal assistant, UAN)", "", "+31842012345", false, "uan numbers"},
		{"default: Dutch 088 company number (UAN)", "", "+31882012345", false, "uan numbers"},
		{"default: Dutch 085 (VoIP)", "", "+31852012345", false, "voip numbers"},
		{"default: Dutch 0800 toll free", "", "+318001234", false, "toll_free numbers"},
		{"default: Belgian fixed line", "", "+3222123456", false, "BE numbers are not in dialer.allow.countries [NL]"},
		{"default: international premium rate", "", "+979123456789", false, "001 numbers"},
		{"default: not canonical E.164", "", "+310201234567", false, "not canonical"},
		{"default: a dial string smuggled in the number", "", "+31201234567@other-trunk/sip:+44909879@evil.example", false, "not in E.164 form"},
		{"countries named: Belgian mobile", "dialer:\n  allow:\n    countries: [NL, be]\n", "+32471123456", true, "allowed: BE mobile"},
		{"types named: 088 allowed", "dialer:\n  allow:\n    types: [fixed_line, mobile, uan]\n", "+31882012345", true, "allowed: NL uan"},
		{"US: fixed_line_or_mobile needs both", "dialer:\n  allow:\n    countries: [US]\n", "+12125551234", true, "allowed: US fixed_line_or_mobile"},
		{"US: mobile alone does not admit it", "dialer:\n  allow:\n    countries: [US]\n    types: [mobile]\n", "+12125551234", false, "fixed_line_or_mobile numbers"},
		{"patterns narrow further", "dialer:\n  allow:\n    patterns: ['\\+3120.*']\n", "+31101234567", false, "matches none of dialer.allow.patterns"},
		{"list form: patterns decide the country", "dialer:\n  allow: ['\\+32[0-9]{8,9}']\n", "+3222123456", true, "allowed: BE fixed_line"},
		{"list form: still no premium rate", "dialer:\n  allow: ['\\+31[0-9]{9}']\n", "+31900123456", false, "premium_rate"},
		{"default country follows detector.default_country", "detector:\n  default_country: BE\n", "+3222123456", true, "allowed: BE fixed_line"},
		{"the old default_country_code still names the country", "detector:\n  default_country_code: \"32\"\n", "+3222123456", true, "allowed: BE fixed_line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseWith(t, tt.config)
			if err != nil {
				t.Fatalf("config does not load: %v", err)
			}
			d := c.Decide(tt.number)
			if d.Allowed != tt.want || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Decide(%q) = %v %q; want %v and a reason containing %q", tt.number, d.Allowed, d.Reason, tt.want, tt.reason)
			}
			if c.Allowed(tt.number) != tt.want {
				t.Fatalf("Allowed(%q) disagrees with Decide", tt.number)
			}
		})
	}
}

func TestExplainReadsNumbersInTheDefaultCountry(t *testing.T) {
	c, err := parseWith(t, "")
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{"020 123 4567": "+31201234567", "201234567": "+31201234567", "+31 (0)20 1234567": "+31201234567"} {
		d, err := c.Explain(raw)
		if err != nil || !d.Allowed || d.Number.E164 != want {
			t.Errorf("Explain(%q) = %+v, %v; want %s allowed", raw, d, err, want)
		}
	}
	if _, err := c.Explain("0201234"); err == nil || !strings.Contains(err.Error(), "not a valid number") {
		t.Errorf("Explain of a short number: %v; want not a valid number", err)
	}
}

func TestBadNumberSettingsAreNamed(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"unknown country", "detector:\n  default_country: XX\n", `detector.default_country: must be an ISO 3166 country code such as NL, BE or DE, got "XX"`},
		{"code and country disagree", "detector:\n  default_country: NL\n  default_country_code: \"32\"\n", "detector.default_country_code: +32 is not the calling code of detector.default_country NL (+31)"},
		{"a code no country has", "detector:\n  default_country_code: \"999\"\n", `detector.default_country_code: no country has the calling code "999"`},
		{"a code that is no code", "detector:\n  default_country_code: \"+31\"\n", `detector.default_country_code: must be 1 to 3 digits`},
		{"unknown allowed country", "dialer:\n  allow:\n    countries: [NL, EU]\n", `dialer.allow.countries[1]: must be an ISO 3166 country code such as NL, BE or DE, got "EU"`},
		{"unknown type", "dialer:\n  allow:\n    types: [landline]\n", `dialer.allow.types[0]: unknown number type "landline"`},
		{"empty types", "dialer:\n  allow:\n    types: []\n", "dialer.allow.types: must not be empty"},
		{"empty countries", "dialer:\n  allow:\n    countries: []\n", "dialer.allow.countries: must not be empty"},
		{"bad pattern in the mapping form", "dialer:\n  allow:\n    patterns: ['[']\n", "dialer.allow.patterns[0]: invalid regexp"},
		{"unknown key", "dialer:\n  allow:\n    regions: [NL]\n", "dialer.allow.regions: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseWith(t, tt.config)
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestAllowPatternsFromTheEnvironmentKeepWorking(t *testing.T) {
	base, err := os.ReadFile("testdata/minimal.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseEnviron(base, []string{`CALLBACKD_DIALER_ALLOW_COUNTRIES=NL,BE`, `CALLBACKD_DIALER_ALLOW_TYPES=mobile`})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Allowed("+32471123456") || c.Allowed("+31201234567") {
		t.Errorf("countries NL,BE and types mobile from the environment: %+v", c.Dialer.Allow)
	}
}

func TestSecretsThatAreTooWeakOrInTheWrongPlaceAreRefused(t *testing.T) {
	tests := []struct {
		name, config, want, secret string
	}{
		{"a short http.token", "http:\n  token: short-secret\n", "http.token: must be at least 16 bytes, got 12", "short-secret"},
		{"credentials in the ARI URL", "", "asterisk[0].url: must not contain credentials; use username and password", "hunter2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "asterisk:\n  - name: pbx1\n    url: http://callbackd:hunter2@127.0.0.1:8088/ari\n    username: callbackd\n    password: x\nqueues:\n  - name: support\n"
			if tt.config != "" {
				base, err := os.ReadFile("testdata/minimal.good.yml")
				if err != nil {
					t.Fatal(err)
				}
				doc = string(base) + tt.config
			}
			_, err := Parse([]byte(doc), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v; want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Errorf("the error prints the secret: %v", err)
			}
		})
	}
}
