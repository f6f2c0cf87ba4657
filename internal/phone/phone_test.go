package phone

import (
	"errors"
	"strings"
	"testing"
)

func TestParseE164(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "+31201234502", want: "+31201234502"},
		{in: "+31 (20) 123-45.02", want: "+31201234502"},
		{in: "+1 202 555 0143", want: "+12025550143"},
		{in: "", wantErr: "empty"},
		{in: "0201234502", wantErr: "does not start with '+'"},
		{in: "+312", wantErr: "has 3 digits"},
		{in: "+3120123450212345678", wantErr: "has 19 digits"},
		{in: "+0201234502", wantErr: "country code never starts with 0"},
		{in: "+31201234502;x", wantErr: "has the character ';'"},
		{in: "+3120+1234502", wantErr: "has the character '+'"},
		{in: "sip:+31201234502@evil", wantErr: "has the character 's'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseE164(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseE164(%q) error = %v, want ErrInvalid containing %q", tt.in, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "1234502") {
					t.Fatalf("error %q leaks the unmasked number", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseE164(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := map[string]string{
		"+31201234502": "+31*******02",
		"1003":         "****",
		"":             "",
		"+3120":        "*****",
		"+312012":      "+31**12",
	}
	for in, want := range tests {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseE164(f *testing.F) {
	for _, s := range []string{"+31201234502", "", "0201234502", "+", "+0", "++1", "+1 (202) 555-0143"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseE164(s)
		if err != nil {
			return
		}
		again, err := ParseE164(n)
		if err != nil || again != n {
			t.Fatalf("normalised %q does not parse to itself: %q, %v", n, again, err)
		}
	})
}
